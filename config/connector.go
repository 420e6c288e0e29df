package config

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/magiconair/properties"
)

// ConnectorImport is what a Kafka Connect JDBC sink .properties file translates to.
type ConnectorImport struct {
	OpenMLDB OpenMLDB
	Sink     Sink
	// Ignored lists keys that were read but have no effect here (unknown, or a JDBC-sink tuning
	// knob the proxy does not need), for one warning line.
	Ignored []string
}

// connectorInert are keys that describe the Connect worker, not the sink: accepted silently.
var connectorInert = map[string]bool{
	"name": true, "connector.class": true, "tasks.max": true,
	"key.converter": true, "key.converter.schemas.enable": true,
	"value.converter": true, "errors.deadletterqueue.context.headers.enable": true,
	"errors.log.enable": true, "errors.log.include.messages": true,
	"pk.fields": true, "insert.mode": true, "pk.mode": true, "delete.enabled": true,
	"dialect.name": true,
}

// LoadConnectorProperties reads a Kafka Connect JDBC sink configuration (for example OpenMLDB's
// openmldb-sink.properties) and translates it. Contradictory or impossible settings are errors;
// keys with no meaning here are returned in Ignored.
func LoadConnectorProperties(path string) (*ConnectorImport, error) {
	p, err := properties.LoadFile(path, properties.UTF8)
	if err != nil {
		return nil, fmt.Errorf("connector config %s: %w", path, err)
	}
	imp, err := translateConnector(p.Map())
	if err != nil {
		return nil, fmt.Errorf("connector config %s: %w", path, err)
	}
	return imp, nil
}

func translateConnector(m map[string]string) (*ConnectorImport, error) {
	imp := &ConnectorImport{}
	s := &imp.Sink
	used := map[string]bool{}
	get := func(k string) (string, bool) {
		v, ok := m[k]
		used[k] = true
		return strings.TrimSpace(v), ok
	}

	rawURL, ok := get("connection.url")
	if !ok || rawURL == "" {
		return nil, fmt.Errorf("connection.url: required, like jdbc:openmldb:///DB?zk=HOST:PORT&zkPath=/openmldb")
	}
	urlIgnored, err := parseOpenMLDBURL(rawURL, &imp.OpenMLDB)
	if err != nil {
		return nil, fmt.Errorf("connection.url: %w", err)
	}
	if v, ok := get("connection.user"); ok {
		imp.OpenMLDB.User = v
	}
	if v, ok := get("connection.password"); ok {
		imp.OpenMLDB.Password = v
	}

	topics, hasTopics := get("topics")
	regex, hasRegex := get("topics.regex")
	switch {
	case hasTopics && hasRegex && topics != "" && regex != "":
		return nil, fmt.Errorf("topics and topics.regex are both set; Kafka Connect allows only one")
	case topics != "":
		s.Topics = splitList(topics)
	case regex != "":
		s.TopicsRegex = regex
	default:
		return nil, fmt.Errorf("topics: required (or topics.regex)")
	}

	if v, ok := get("auto.create"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("auto.create: %q is not true or false", v)
		}
		s.AutoCreate = b
	}
	if v, ok := get("auto.evolve"); ok && v == "true" {
		return nil, fmt.Errorf("auto.evolve=true: OpenMLDB tables cannot be altered by the sink; create the new columns yourself")
	}
	if v, ok := get("table.name.format"); ok && v != "" {
		s.Table = v
	}
	if v, ok := get("topic.table.mapping"); ok && v != "" {
		s.TableMap = map[string]string{}
		for _, pair := range splitList(v) {
			topic, table, found := strings.Cut(pair, ":")
			if !found || topic == "" || table == "" {
				return nil, fmt.Errorf("topic.table.mapping: %q is not topic:table", pair)
			}
			s.TableMap[strings.TrimSpace(topic)] = strings.TrimSpace(table)
		}
	}
	if v, ok := get("fields.whitelist"); ok && v != "" {
		s.Fields = splitList(v)
	}
	if v, ok := get("pk.mode"); ok && v != "" && v != "none" {
		return nil, fmt.Errorf("pk.mode=%s: primary keys are unsupported in OpenMLDB; use pk.mode=none", v)
	}
	if v, ok := get("insert.mode"); ok && v != "" && v != "insert" {
		return nil, fmt.Errorf("insert.mode=%s: OpenMLDB online tables only support insert", v)
	}
	if v, ok := get("delete.enabled"); ok && v == "true" {
		return nil, fmt.Errorf("delete.enabled=true: needs a primary key, which OpenMLDB does not have; tombstones are skipped")
	}
	if v, ok := get("value.converter.schemas.enable"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("value.converter.schemas.enable: %q is not true or false", v)
		}
		if !b {
			s.Format = FormatJSON
		}
	}
	if v, ok := get("value.converter"); ok && v != "" && v != "org.apache.kafka.connect.json.JsonConverter" {
		return nil, fmt.Errorf("value.converter=%s: only org.apache.kafka.connect.json.JsonConverter records can be decoded", v)
	}

	tolerance, _ := get("errors.tolerance")
	dlq, _ := get("errors.deadletterqueue.topic.name")
	switch tolerance {
	case "", "none":
		if dlq != "" {
			return nil, fmt.Errorf("errors.deadletterqueue.topic.name is set but errors.tolerance is %q; a dead-letter queue needs errors.tolerance=all", orNone(tolerance))
		}
		s.OnInvalid = OnInvalidReject
	case "all":
		if dlq != "" {
			s.OnInvalid, s.DLQTopic = OnInvalidDLQ, dlq
		} else {
			s.OnInvalid = OnInvalidSkip
		}
	default:
		return nil, fmt.Errorf("errors.tolerance: %q is not none or all", tolerance)
	}

	read := make([]string, 0, len(used))
	for k := range used {
		read = append(read, k)
	}
	for k := range m {
		if !used[k] && !connectorInert[k] {
			// A typo of a key this translation reads says so: it is in the same warning as
			// tuning keys that legitimately do nothing here.
			if s := closest(k, read); s != "" {
				k += " (did you mean " + s + "?)"
			}
			imp.Ignored = append(imp.Ignored, k)
		}
	}
	sort.Strings(imp.Ignored)
	imp.Ignored = append(imp.Ignored, urlIgnored...)
	if err := s.normalize(0); err != nil {
		return nil, err
	}
	return imp, nil
}

// urlParams are the connection.url parameters read here; others (the JDBC driver's timeouts,
// say) have no effect and are listed with the ignored keys.
var urlParams = []string{"zk", "zkPath", "nameserver", "user", "password"}

// parseOpenMLDBURL reads jdbc:openmldb:///DB?zk=H:P&zkPath=/P (cluster) or
// jdbc:openmldb:///DB?nameserver=H:P (standalone, this proxy's extension), and returns the
// parameters it ignored (a likely typo of one it reads says so: zkpath would leave zkPath at its
// default).
func parseOpenMLDBURL(raw string, o *OpenMLDB) ([]string, error) {
	rest, ok := strings.CutPrefix(raw, "jdbc:openmldb:")
	if !ok {
		return nil, fmt.Errorf("%q does not start with jdbc:openmldb:", raw)
	}
	u, err := url.Parse(rest)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	o.Database = strings.Trim(u.Path, "/")
	if o.Database == "" {
		return nil, fmt.Errorf("%q names no database (jdbc:openmldb:///DB?…)", raw)
	}
	q := u.Query()
	o.ZKCluster = q.Get("zk")
	o.ZKPath = q.Get("zkPath")
	o.Nameserver = q.Get("nameserver")
	// OpenMLDB's JDBC driver also takes the credentials here; connection.user and
	// connection.password, read after, win.
	o.User, o.Password = q.Get("user"), q.Get("password")
	if o.ZKCluster == "" && o.Nameserver == "" {
		return nil, fmt.Errorf("%q has neither zk=HOST:PORT nor nameserver=HOST:PORT", raw)
	}
	if o.ZKPath == "" {
		o.ZKPath = "/openmldb"
	}
	var ignored []string
	for name := range q {
		if slices.Contains(urlParams, name) {
			continue
		}
		item := "connection.url parameter " + name
		if s := closest(name, urlParams); s != "" {
			item += " (did you mean " + s + "?)"
		}
		ignored = append(ignored, item)
	}
	sort.Strings(ignored)
	return ignored, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
