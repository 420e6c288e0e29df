package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// SASL mechanisms the proxy's own broker connections can use (kafka.sasl.mechanism).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// KafkaSASL holds the credentials of the connections the proxy opens to the brokers itself: broker
// discovery and the readiness probe, the tee's dead-letter producer and its transaction-coordinator
// check. Clients' connections never use them: their own SASL passes through to the brokers.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty connects without SASL.
	Mechanism string `koanf:"mechanism"`
	// Username and Password are the credentials. Prefer the environment for the password
	// (OKP_KAFKA__SASL__PASSWORD): flags show in process listings.
	Username string `koanf:"username"`
	Password string `koanf:"password"`
}

// Enabled reports whether the proxy's own connections authenticate.
func (s KafkaSASL) Enabled() bool { return s.Mechanism != "" }

func registerSASLFlags(fs *pflag.FlagSet) {
	fs.String("kafka.sasl.mechanism", "", "SASL mechanism of the proxy's own broker connections (discovery, readiness, dead letters, transaction checks): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; clients' SASL passes through regardless")
	fs.String("kafka.sasl.username", "", "SASL user of the proxy's own broker connections")
	fs.String("kafka.sasl.password", "", "SASL password of the proxy's own broker connections (prefer OKP_KAFKA__SASL__PASSWORD)")
}

// normalize upper-cases the mechanism, as Kafka clients accept it in any case.
func (s *KafkaSASL) normalize() { s.Mechanism = strings.ToUpper(strings.TrimSpace(s.Mechanism)) }

// validate checks the kafka.sasl keys.
func (s KafkaSASL) validate() []error {
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" {
			return []error{errors.New("kafka.sasl.mechanism: kafka.sasl.username or kafka.sasl.password is set but no mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")}
		}
		return nil
	}
	var errs []error
	switch s.Mechanism {
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: %q is not supported (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.Mechanism))
	}
	if s.Username == "" {
		errs = append(errs, fmt.Errorf("kafka.sasl.username: required with kafka.sasl.mechanism %s", s.Mechanism))
	}
	if s.Password == "" {
		errs = append(errs, fmt.Errorf("kafka.sasl.password: required with kafka.sasl.mechanism %s", s.Mechanism))
	}
	return errs
}
