package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs a tiny load at kfake directly and through the proxy, so `make test` keeps the
// benchmark working; the figures are not asserted.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-smoke"}
	if bin := os.Getenv("OKP_PROXY_BIN"); bin != "" {
		args = append(args, "-proxy-bin", bin)
	}
	var out bytes.Buffer
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("loadbench -smoke: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{"round 1 direct", "round 1 proxy", "summary"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSmokeTee runs a tiny seed-shaped load through the proxy with the tee off and on, which also
// checks that the tee's table holds exactly the acknowledged records; the figures are not asserted.
func TestSmokeTee(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-smoke", "-tee"}
	if bin := os.Getenv("OKP_PROXY_BIN"); bin != "" {
		args = append(args, "-proxy-bin", bin)
	}
	var out bytes.Buffer
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("loadbench -smoke -tee: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{"round 1 proxy", "round 1 tee", "(= acknowledged)", "tee on vs off"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSinkIndexFlag(t *testing.T) {
	o, err := parseOptions([]string{"-tee", "-sink-index", "c7_string,c1_int16:c9_timestamp"}, io.Discard)
	if err != nil || !slices.Equal(o.indexKeys, []string{"c7_string", "c1_int16"}) || o.indexTS != "c9_timestamp" {
		t.Fatalf("keys %q ts %q err %v", o.indexKeys, o.indexTS, err)
	}
	if o, err = parseOptions([]string{"-sink-index", "c3_int64"}, io.Discard); err != nil || o.indexTS != "" || len(o.indexKeys) != 1 {
		t.Fatalf("no TS: keys %q ts %q err %v", o.indexKeys, o.indexTS, err)
	}
	if _, err := parseOptions([]string{"-sink-index", ",c1:ts"}, io.Discard); err == nil || !strings.Contains(err.Error(), "KEY[,KEY...][:TS]") {
		t.Fatalf("empty key: err %v", err)
	}
}
