// Package harness holds the reusable pieces of the end-to-end tests and the load benchmark: an
// in-process kfake cluster, a launcher for the built proxy binary, bounded external commands and
// deterministic record generators. Everything it starts has a Stop/Close and every wait is bounded.
// Free port blocks come from internal/freeport.
package harness
