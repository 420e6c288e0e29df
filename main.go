// Command openmldb-kafka-proxy is a Kafka wire-protocol proxy that clients use instead of the
// brokers. Subcommands: run (default) starts the proxy; demo starts an embedded broker with the
// proxy in front of it; scan prints a table's rows; journal shows and settles what a proxy's
// journal directory holds.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := dispatch(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "openmldb-kafka-proxy:", err)
		os.Exit(1)
	}
}
