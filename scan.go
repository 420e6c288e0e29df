package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/config"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
)

// scanCmd prints every row of DB.TABLE as JSON lines (or raw row bytes in hex with --raw).
func scanCmd(args []string) error {
	fs := pflag.NewFlagSet("scan", pflag.ContinueOnError)
	fs.SetNormalizeFunc(config.DashesAsUnderscores)
	var o config.OpenMLDB
	fs.StringVar(&o.ZKCluster, "openmldb.zk_cluster", "", "OpenMLDB ZooKeeper hosts (cluster mode)")
	fs.StringVar(&o.ZKPath, "openmldb.zk_path", config.DefaultZKPath, "OpenMLDB root path in ZooKeeper")
	fs.StringVar(&o.ZKAuth, "openmldb.zk_auth", "", "ZooKeeper digest credential user:password")
	fs.StringVar(&o.Nameserver, "openmldb.nameserver", "", "OpenMLDB nameserver host:port (standalone mode)")
	fs.StringVar(&o.User, "openmldb.user", config.DefaultOpenMLDBUser, "OpenMLDB user")
	fs.StringVar(&o.Password, "openmldb.password", "", "OpenMLDB password")
	raw := fs.Bool("raw", false, "print each stored row's encoded bytes in hex")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: openmldb-kafka-proxy scan [--openmldb.zk_cluster H:P [--openmldb.zk_path /openmldb] | --openmldb.nameserver H:P] [--raw] DB.TABLE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("scan: name exactly one DB.TABLE")
	}
	db, table, ok := strings.Cut(fs.Arg(0), ".")
	if !ok || db == "" || table == "" {
		return fmt.Errorf("scan: %q is not DB.TABLE", fs.Arg(0))
	}
	if !o.Enabled() {
		return errors.New("scan: set --openmldb.zk_cluster or --openmldb.nameserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Connecting gets 30 s of the five minutes: an address nobody answers on should not leave
	// the command silent for the whole scan's time.
	octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := openmldb.Open(octx, openmldbOptions(o, log))
	ocancel()
	if err != nil {
		return fmt.Errorf("connect to OpenMLDB: %w", err)
	}
	defer c.Close()
	// A wrong zk_path or database name then says so, rather than "table not found".
	if err := requireDatabase(ctx, c, db); err != nil {
		return fmt.Errorf("scan %s.%s: %w", db, table, err)
	}
	return openmldb.ScanTable(ctx, c, db, table, *raw, os.Stdout)
}
