package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
)

// demoCmd starts an embedded kfake broker (seed topic topic1) and the proxy in front of it.
func demoCmd(args []string) error {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	listen := fs.String("listen", config.DefaultListen, "proxy bootstrap address")
	kafkaPort := fs.Int("kafka_port", 9092, "port of the embedded broker on 127.0.0.1")
	level := fs.String("log.level", config.DefaultLogLevel, "log level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	logCfg := config.Log{Level: *level, Format: config.DefaultLogFormat}
	log := newLogger(logCfg)

	cluster, err := kfake.NewCluster(
		kfake.Ports(*kafkaPort),
		kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(-1, "topic1"),
	)
	if err != nil {
		return fmt.Errorf("start embedded kafka on port %d: %w", *kafkaPort, err)
	}
	defer cluster.Close()
	broker := net.JoinHostPort("127.0.0.1", strconv.Itoa(*kafkaPort))
	log.Info("embedded kafka broker", "addr", broker, "topic", "topic1")

	cfg := &config.Config{
		Listen:        *listen,
		Kafka:         config.Kafka{Bootstrap: []string{broker}},
		MaxFrameBytes: config.DefaultMaxFrameBytes,
		Log:           logCfg,
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, log, proxyOptions(cfg, log))
}
