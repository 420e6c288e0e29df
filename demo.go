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
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

// demoCmd is the seed guide's whole setup in one process: an embedded kfake broker (topic
// topic1), an OpenMLDB-compatible cluster with the database kafka_test, and the proxy in front
// with a sink for topic1 that auto-creates its table.
func demoCmd(args []string) error {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	fs.SetNormalizeFunc(config.DashesAsUnderscores)
	listen := fs.String("listen", config.DefaultListen, "proxy bootstrap address")
	kafkaPort := fs.Int("kafka_port", 9092, "port of the embedded broker on 127.0.0.1")
	nsAddr := fs.String("openmldb_nameserver", "127.0.0.1:7527", "listen address of the embedded OpenMLDB-compatible nameserver")
	zkAddr := fs.String("zk", "", "register the OpenMLDB-compatible cluster in this ZooKeeper (host:port) under /openmldb and use cluster mode; default standalone")
	zkPath := fs.String("zk_path", config.DefaultZKPath, "root path of the cluster in ZooKeeper (with --zk)")
	adminListen := fs.String("admin_listen", config.DefaultAdminListen, "admin HTTP address for /metrics, /livez, /readyz (empty: disabled)")
	level := fs.String("log.level", config.DefaultLogLevel, "log level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	logCfg := config.Log{Level: *level, Format: config.DefaultLogFormat}
	log := newLogger(logCfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

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

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	om, err := openmldbtest.Start(startCtx, openmldbtest.Options{ZK: *zkAddr, ZKPath: *zkPath, NameserverAddr: *nsAddr, Logger: log})
	if err != nil {
		return fmt.Errorf("start OpenMLDB-compatible cluster: %w", err)
	}
	defer om.Close()
	omCfg := config.OpenMLDB{Nameserver: om.Nameserver(), ZKPath: config.DefaultZKPath, Database: "kafka_test", User: config.DefaultOpenMLDBUser}
	scanHint := "./openmldb-kafka-proxy scan --openmldb.nameserver " + om.Nameserver() + " kafka_test.topic1"
	if *zkAddr != "" {
		omCfg.Nameserver, omCfg.ZKCluster, omCfg.ZKPath = "", *zkAddr, om.ZKPath()
		scanHint = "./openmldb-kafka-proxy scan --openmldb.zk_cluster " + *zkAddr + " --openmldb.zk_path " + om.ZKPath() + " kafka_test.topic1"
	}
	admin, err := openmldb.Open(startCtx, openmldbOptions(omCfg, log))
	if err != nil {
		return fmt.Errorf("connect to the OpenMLDB-compatible cluster: %w", err)
	}
	err = admin.CreateDatabase(startCtx, omCfg.Database, true)
	admin.Close()
	if err != nil {
		return fmt.Errorf("create database %s: %w", omCfg.Database, err)
	}

	// The proxy's configuration goes through the same loader as run, so every key has its
	// default; only the sink is added here.
	flags := []string{"--listen", *listen, "--kafka.bootstrap", broker, "--log.level", *level,
		"--openmldb.database", omCfg.Database, "--admin.listen", *adminListen}
	if omCfg.ZKCluster != "" {
		flags = append(flags, "--openmldb.zk_cluster", omCfg.ZKCluster, "--openmldb.zk_path", omCfg.ZKPath)
	} else {
		flags = append(flags, "--openmldb.nameserver", omCfg.Nameserver)
	}
	cfg, err := config.Load("demo", flags, nil)
	if err != nil {
		return err
	}
	cfg.Sinks = []config.Sink{{Topics: []string{"topic1"}, AutoCreate: true}}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return serve(ctx, log, cfg, "openmldb_nameserver", om.Nameserver(), "openmldb_zk", *zkAddr, "database", omCfg.Database, "scan", scanHint)
}
