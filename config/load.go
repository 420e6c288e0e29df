package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix prefixes every environment variable the configuration reads.
const EnvPrefix = "OKP_"

// listKeys are split on commas when they come from the environment or a YAML string.
var listKeys = map[string]bool{"kafka.bootstrap": true, "broker_ports": true}

// Load parses args (without the program and command name) as flags, reads the YAML file named by
// --config, the OKP_ environment (from environ, normally os.Environ()) and the flags, in that
// order of increasing precedence, and validates the result. pflag.ErrHelp is returned for -h.
func Load(name string, args, environ []string) (*Config, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetNormalizeFunc(DashesAsUnderscores)
	registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	k := koanf.New(".")
	if path, _ := fs.GetString("config"); path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	envp := env.Provider(".", env.Opt{
		Prefix:        EnvPrefix,
		TransformFunc: envKey,
		EnvironFunc:   func() []string { return environ },
	})
	if err := k.Load(envp, nil); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	if err := k.Load(posflag.Provider(fs, ".", k), nil); err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	if err := checkTextKeys(k); err != nil {
		return nil, err
	}
	var c Config
	if err := decode(k, &c); err != nil {
		return nil, err
	}
	c.Kafka.Bootstrap = toList(k.Get("kafka.bootstrap"))
	ports, err := parseBrokerPorts(k.Get("broker_ports"))
	if err != nil {
		return nil, err
	}
	c.BrokerPorts = ports
	if c.ConnectorConfig != "" {
		if err := c.importConnector(); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// textKeys are credentials: YAML reads an unquoted 012345 or true as a number or a boolean, and
// the decoder would then turn it into different text. They must be strings as written.
var textKeys = []string{"openmldb.user", "openmldb.password", "openmldb.zk_auth", "kafka.sasl.username", "kafka.sasl.password"}

// checkTextKeys refuses a credential that YAML read as something other than text; the value
// itself is never printed.
func checkTextKeys(k *koanf.Koanf) error {
	var errs []error
	for _, key := range textKeys {
		if v := k.Get(key); v != nil {
			if _, ok := v.(string); !ok {
				errs = append(errs, fmt.Errorf("%s: the configuration file gives a %T, not text; quote the value (\"...\") so it is kept exactly as written", key, v))
			}
		}
	}
	return errors.Join(errs...)
}

// LoadOS is Load with the process environment.
func LoadOS(name string, args []string) (*Config, error) { return Load(name, args, os.Environ()) }

// serviceLinkVar matches the variables Kubernetes (and Docker links) give every container for a
// Service whose name starts with okp (okp: OKP_SERVICE_HOST, OKP_PORT_9093_TCP_ADDR, …; okp-admin:
// OKP_ADMIN_SERVICE_PORT, …), lowercased without the prefix. They name no setting, and refusing
// them as unknown keys would stop the proxy from starting once such a Service exists.
var serviceLinkVar = regexp.MustCompile(`^(?:[a-z0-9_]+_)?(?:service_host|service_port(?:_[a-z0-9_]+)?|port(?:_[0-9]+_(?:tcp|udp|sctp)(?:_(?:proto|port|addr))?)?)$`)

// envKey maps OKP_KAFKA__BOOTSTRAP to kafka.bootstrap and splits list values on commas; service
// link variables are skipped (an empty key).
func envKey(k, v string) (string, any) {
	if raw := strings.ToLower(strings.TrimPrefix(k, EnvPrefix)); !strings.Contains(raw, "__") && serviceLinkVar.MatchString(raw) {
		return "", nil
	}
	key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, EnvPrefix), "__", "."))
	if listKeys[key] {
		return key, toList(v)
	}
	return key, v
}

// toList turns a string, a []string or a []any into a trimmed list without empty items;
// strings are split on commas.
func toList(v any) []string {
	var raw []string
	switch x := v.(type) {
	case nil:
	case string:
		raw = strings.Split(x, ",")
	case []string:
		for _, s := range x {
			raw = append(raw, strings.Split(s, ",")...)
		}
	case []any:
		for _, s := range x {
			raw = append(raw, strings.Split(fmt.Sprint(s), ",")...)
		}
	default:
		raw = []string{fmt.Sprint(x)}
	}
	out := raw[:0]
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// parseBrokerPorts reads broker_ports: a map {id: port} (YAML) or a list of "id=port" strings.
func parseBrokerPorts(v any) (map[int32]int, error) {
	const why = "a list of node_id=port pairs, e.g. 0=19094,1=19095"
	pairs := map[string]string{}
	if m, ok := v.(map[string]any); ok {
		for id, p := range m {
			pairs[id] = fmt.Sprint(p)
		}
	} else {
		for _, item := range toList(v) {
			id, port, ok := strings.Cut(item, "=")
			if !ok {
				return nil, fmt.Errorf("broker_ports: %q is not node_id=port; want %s", item, why)
			}
			pairs[strings.TrimSpace(id)] = strings.TrimSpace(port)
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[int32]int, len(pairs))
	for id, port := range pairs {
		n, err := strconv.ParseInt(id, 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("broker_ports: node id %q must be a non-negative integer; want %s", id, why)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("broker_ports: port %q of node %d must be 1-65535", port, n)
		}
		out[int32(n)] = p
	}
	return out, nil
}

// Validate checks every key and fills derived defaults (advertised_host). Each error names the key.
func (c *Config) Validate() error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port: %w", c.Listen, err))
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		errs = append(errs, fmt.Errorf("listen: port %q must be 1-65535 (the per-broker ports follow it)", port))
	}
	if c.AdvertisedHost == "" {
		c.AdvertisedHost = host
		if host == "" || host == "0.0.0.0" || host == "::" {
			errs = append(errs, fmt.Errorf("advertised_host: required when listen (%q) has no specific host", c.Listen))
		}
	}
	if len(c.Kafka.Bootstrap) == 0 {
		errs = append(errs, errors.New("kafka.bootstrap: required, a comma-separated list of host:port"))
	}
	for _, b := range c.Kafka.Bootstrap {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("kafka.bootstrap: %q is not host:port", b))
		}
	}
	if c.Kafka.TransactionMaxTimeout < time.Second {
		errs = append(errs, fmt.Errorf("kafka.transaction_max_timeout: %s is below 1s (use the brokers' transaction.max.timeout.ms, default 15m)", c.Kafka.TransactionMaxTimeout))
	}
	if c.MaxFrameBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_frame_bytes: %d is below the 1024-byte minimum", c.MaxFrameBytes))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %q must be debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q must be text or json", c.Log.Format))
	}
	errs = append(errs, c.validateOpenMLDB()...)
	errs = append(errs, c.TLS.validate()...)
	errs = append(errs, c.Kafka.TLS.validate()...)
	c.Kafka.SASL.normalize()
	errs = append(errs, c.Kafka.SASL.validate()...)
	errs = append(errs, c.Limits.validate()...)
	errs = append(errs, c.validateOps()...)
	return errors.Join(errs...)
}

// importConnector merges the Kafka Connect sink file: its sink is added, and its connection URL
// fills the openmldb keys that were left at their defaults (explicit settings win).
func (c *Config) importConnector() error {
	imp, err := LoadConnectorProperties(c.ConnectorConfig)
	if err != nil {
		return err
	}
	o, from := &c.OpenMLDB, imp.OpenMLDB
	if o.ZKCluster == "" && o.Nameserver == "" {
		o.ZKCluster, o.Nameserver = from.ZKCluster, from.Nameserver
		if from.ZKPath != "" && o.ZKPath == DefaultZKPath {
			o.ZKPath = from.ZKPath
		}
	}
	if o.Database == "" {
		o.Database = from.Database
	} else if o.Database != from.Database {
		return fmt.Errorf("connector_config: connection.url names database %q but openmldb.database is %q", from.Database, o.Database)
	}
	if from.User != "" && (o.User == "" || o.User == DefaultOpenMLDBUser) {
		o.User = from.User
	}
	if from.Password != "" && o.Password == "" {
		o.Password = from.Password
	}
	c.Sinks = append(c.Sinks, imp.Sink)
	c.ConnectorIgnored = imp.Ignored
	return nil
}

// validateOpenMLDB checks the openmldb keys and the sinks.
func (c *Config) validateOpenMLDB() []error {
	var errs []error
	o := &c.OpenMLDB
	if o.ZKCluster != "" && o.Nameserver != "" {
		errs = append(errs, errors.New("openmldb.nameserver: set either openmldb.zk_cluster (cluster mode) or openmldb.nameserver (standalone), not both"))
	}
	for _, hp := range append(strings.Split(o.ZKCluster, ","), o.Nameserver) {
		if hp == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(strings.TrimSpace(hp)); err != nil {
			errs = append(errs, fmt.Errorf("openmldb: %q is not host:port", hp))
		}
	}
	if !strings.HasPrefix(o.ZKPath, "/") {
		errs = append(errs, fmt.Errorf("openmldb.zk_path: %q must start with /", o.ZKPath))
	}
	if len(c.Sinks) > 0 {
		if !o.Enabled() {
			errs = append(errs, errors.New("openmldb.zk_cluster: sinks are configured but no OpenMLDB cluster is (set openmldb.zk_cluster or openmldb.nameserver)"))
		}
		if o.Database == "" {
			errs = append(errs, errors.New("openmldb.database: required when sinks are configured"))
		}
		if err := NormalizeSinks(c.Sinks); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// DashesAsUnderscores lets every flag be spelled with dashes too (--connector-config is
// --connector_config, --max-frame-bytes is --max_frame_bytes): keys use underscores, as koanf
// and the environment need, while Kafka tooling habitually writes dashes.
func DashesAsUnderscores(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	return pflag.NormalizedName(strings.ReplaceAll(name, "-", "_"))
}
