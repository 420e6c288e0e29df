package config

import (
	"fmt"
	"regexp"
	"strings"
)

// OpenMLDB says how to reach the OpenMLDB cluster the tee writes into: through ZooKeeper
// (cluster mode) or a nameserver address (standalone mode).
type OpenMLDB struct {
	ZKCluster  string `koanf:"zk_cluster"`
	ZKPath     string `koanf:"zk_path"`
	ZKAuth     string `koanf:"zk_auth"` // "user:password" for ZooKeeper digest auth, optional
	Nameserver string `koanf:"nameserver"`
	Database   string `koanf:"database"`
	User       string `koanf:"user"`
	Password   string `koanf:"password"`
	// JournalDir keeps rows of committed Kafka transactions not yet stored in OpenMLDB across
	// proxy restarts and crashes ("": in memory only).
	JournalDir string `koanf:"journal_dir"`
}

// Enabled reports whether an OpenMLDB cluster is configured at all.
func (o OpenMLDB) Enabled() bool { return o.ZKCluster != "" || o.Nameserver != "" }

// Record formats a sink accepts.
const (
	FormatConnectJSON = "connect-json" // Kafka Connect JsonConverter envelope {"schema":…,"payload":…}
	FormatJSON        = "json"         // schemaless JSON object, read against the table's columns
)

// Invalid-record policies.
const (
	OnInvalidReject = "reject" // the partition is answered INVALID_RECORD and nothing of it is written
	OnInvalidDLQ    = "dlq"    // the batch goes to Kafka, valid rows to OpenMLDB, bad records to dlq_topic
	OnInvalidSkip   = "skip"   // the batch goes to Kafka, valid rows to OpenMLDB, bad records are counted
)

// Orders of rows that tie (same index key and TS-column value) a sink can keep.
const (
	TieOrderOffset = "offset" // a tying row waits for the previous one's answer, so later offsets read as newer
	TieOrderAny    = "any"    // tying rows are sent at once and may be listed in any order
)

// Index is the index to create with an auto-created table; an empty Key means the nameserver's
// default index (first non-float column as key, no TS column).
type Index struct {
	Key []string `koanf:"key"`
	TS  string   `koanf:"ts"`
	// TTL is "0" (keep forever), a duration in minutes with an "m" suffix ("1440m") for an absolute
	// TTL, or a record count with no suffix for a latest TTL ("100").
	TTL string `koanf:"ttl"`
}

// Sink routes topics into OpenMLDB tables.
type Sink struct {
	Topics      []string `koanf:"topics"`
	TopicsRegex string   `koanf:"topics_regex"`
	// Table is the table name; "${topic}" in it is replaced by the topic (default "${topic}").
	Table string `koanf:"table"`
	// TableMap maps individual topics to tables and wins over Table.
	TableMap     map[string]string `koanf:"table_map"`
	AutoCreate   bool              `koanf:"auto_create"`
	Index        Index             `koanf:"index"`
	PartitionNum int               `koanf:"partition_num"`
	ReplicaNum   int               `koanf:"replica_num"`
	Format       string            `koanf:"format"`
	OnInvalid    string            `koanf:"on_invalid"`
	DLQTopic     string            `koanf:"dlq_topic"`
	// Fields, when set, is the projection of record fields written; other fields are ignored.
	Fields      []string `koanf:"fields"`
	ExactlyOnce bool     `koanf:"exactly_once"`
	// TieOrder is TieOrderOffset (default) or TieOrderAny: whether rows of one key with an equal
	// event time on an index with a TS column keep their offset order, at a round trip each.
	TieOrder string `koanf:"tie_order"`

	regex *regexp.Regexp
}

// Matches reports whether the sink tees topic.
func (s *Sink) Matches(topic string) bool {
	for _, t := range s.Topics {
		if t == topic {
			return true
		}
	}
	return s.regex != nil && s.regex.MatchString(topic)
}

// TableFor returns the table the topic's rows go to.
func (s *Sink) TableFor(topic string) string {
	if t, ok := s.TableMap[topic]; ok {
		return t
	}
	return strings.ReplaceAll(s.Table, "${topic}", topic)
}

// normalize fills defaults and checks one sink; i is its position for error messages.
func (s *Sink) normalize(i int) error {
	key := fmt.Sprintf("sinks[%d]", i)
	if len(s.Topics) == 0 && s.TopicsRegex == "" {
		return fmt.Errorf("%s: set topics (a list) or topics_regex", key)
	}
	if len(s.Topics) > 0 && s.TopicsRegex != "" {
		return fmt.Errorf("%s: topics and topics_regex are exclusive, set one", key)
	}
	if s.TopicsRegex != "" {
		if _, err := regexp.Compile(s.TopicsRegex); err != nil {
			// Compiled alone first, so the error quotes the pattern as written, not the anchors.
			return fmt.Errorf("%s.topics_regex %q (topics.regex in a connector config): %w", key, s.TopicsRegex, err)
		}
		re, err := regexp.Compile("^(?:" + s.TopicsRegex + ")$")
		if err != nil {
			return fmt.Errorf("%s.topics_regex %q: %w", key, s.TopicsRegex, err)
		}
		s.regex = re
	}
	if s.Table == "" {
		s.Table = "${topic}"
	}
	switch s.Format {
	case "":
		s.Format = FormatConnectJSON
	case FormatConnectJSON, FormatJSON:
	default:
		return fmt.Errorf("%s.format: %q is not one of connect-json, json", key, s.Format)
	}
	switch s.OnInvalid {
	case "":
		s.OnInvalid = OnInvalidReject
	case OnInvalidReject, OnInvalidSkip:
	case OnInvalidDLQ:
		if s.DLQTopic == "" {
			return fmt.Errorf("%s.dlq_topic: required when on_invalid is dlq", key)
		}
	default:
		return fmt.Errorf("%s.on_invalid: %q is not one of reject, dlq, skip", key, s.OnInvalid)
	}
	switch s.TieOrder {
	case "":
		s.TieOrder = TieOrderOffset
	case TieOrderOffset, TieOrderAny:
	default:
		return fmt.Errorf("%s.tie_order: %q is not one of offset, any", key, s.TieOrder)
	}
	if s.OnInvalid != OnInvalidDLQ && s.DLQTopic != "" {
		return fmt.Errorf("%s.dlq_topic: set, but on_invalid is %s (use on_invalid: dlq)", key, s.OnInvalid)
	}
	if s.AutoCreate && s.Format == FormatJSON {
		return fmt.Errorf("%s.auto_create: a schemaless (format json) record carries no column types; create the table first or use connect-json", key)
	}
	if s.Index.TS != "" && len(s.Index.Key) == 0 {
		return fmt.Errorf("%s.index.key: required when index.ts is set", key)
	}
	if _, err := ParseTTL(s.Index.TTL); err != nil {
		return fmt.Errorf("%s.index.ttl: %w", key, err)
	}
	if s.PartitionNum < 0 || s.ReplicaNum < 0 {
		return fmt.Errorf("%s: partition_num and replica_num must be ≥ 0 (0 = the cluster's default)", key)
	}
	return nil
}

// TTL is a parsed index TTL.
type TTL struct {
	AbsMinutes uint64 // 0 = never expires
	Latest     uint64 // 0 = unlimited
}

// ParseTTL parses Index.TTL: "" or "0" keeps forever, "<n>m" is absolute minutes, "<n>" latest n.
func ParseTTL(s string) (TTL, error) {
	if s == "" || s == "0" {
		return TTL{}, nil
	}
	var n uint64
	if strings.HasSuffix(s, "m") {
		if _, err := fmt.Sscanf(s, "%dm", &n); err != nil || fmt.Sprintf("%dm", n) != s {
			return TTL{}, fmt.Errorf("%q is not <minutes>m", s)
		}
		return TTL{AbsMinutes: n}, nil
	}
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprintf("%d", n) != s {
		return TTL{}, fmt.Errorf("%q is neither <minutes>m (absolute) nor a record count (latest)", s)
	}
	return TTL{Latest: n}, nil
}

// NormalizeSinks fills defaults, compiles regexes and checks that no topic list is claimed by
// two sinks.
func NormalizeSinks(sinks []Sink) error {
	seen := map[string]int{}
	for i := range sinks {
		if err := sinks[i].normalize(i); err != nil {
			return err
		}
		for _, t := range sinks[i].Topics {
			if j, dup := seen[t]; dup {
				return fmt.Errorf("sinks[%d].topics: topic %q is already teed by sinks[%d]", i, t, j)
			}
			seen[t] = i
		}
	}
	return nil
}

// SinkFor returns the first sink that tees topic, or nil.
func SinkFor(sinks []Sink, topic string) *Sink {
	for i := range sinks {
		if sinks[i].Matches(topic) {
			return &sinks[i]
		}
	}
	return nil
}
