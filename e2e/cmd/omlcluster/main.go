// Command omlcluster runs the project's OpenMLDB-compatible cluster (openmldbtest, standalone
// mode: one nameserver and one tablet) as a process of its own, so a benchmark can keep it apart
// from the broker and the producer the way a real OpenMLDB server is: its garbage collector then
// pauses only itself. It prints "ready nameserver=HOST:PORT" once serving and runs until SIGTERM,
// SIGINT or the end of its standard input.
//
//	go run ./e2e/cmd/omlcluster
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/openmldbtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "omlcluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	om, err := openmldbtest.Start(sctx, openmldbtest.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer om.Close()
	fmt.Printf("ready nameserver=%s\n", om.Nameserver())
	// The parent closing our stdin (or dying) ends the cluster as surely as a signal.
	stdinDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinDone)
	}()
	select {
	case <-ctx.Done():
	case <-stdinDone:
	}
	return nil
}
