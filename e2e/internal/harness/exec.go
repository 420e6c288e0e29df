package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Result is the outcome of one external command.
type Result struct {
	Stdout, Stderr string
}

// Run runs name with args under a timeout, feeding stdin if non-nil, and returns its output.
// A non-zero exit or a timeout is an error that quotes the command and the tail of stderr, so a
// failing test shows why without extra logging.
func Run(ctx context.Context, timeout time.Duration, stdin io.Reader, env []string, name string, args ...string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	if env != nil {
		cmd.Env = env
	}
	// Kill the process if it ignores the context; WaitDelay also bounds reading its pipes.
	cmd.WaitDelay = 2 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return res, fmt.Errorf("%s timed out after %s: %s", quote(name, args), timeout, tail(res.Stderr, 2000))
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w: %s", quote(name, args), err, tail(res.Stderr, 2000))
	}
	return res, nil
}

func quote(name string, args []string) string {
	return strings.TrimSpace(name + " " + strings.Join(args, " "))
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
