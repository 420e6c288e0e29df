package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"
)

// keysOutsideTheStruct are keys Load reads itself (Config has no field for them).
var keysOutsideTheStruct = []string{"config", "broker_ports"}

// decode fills c from k. A key that names no setting is an error, not a silent no-op: a
// misspelled "sinkz" or "auto_creat" would otherwise leave the proxy running with nothing teed,
// on start and on every reload alike. So is a duration written without a unit.
func decode(k *koanf.Koanf, c *Config) error {
	var md mapstructure.Metadata
	err := k.UnmarshalWithConf("", c, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationNeedsUnit,
			durationDays,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc()),
		WeaklyTypedInput: true,
		Metadata:         &md,
	}})
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var unknown []string
	for _, key := range md.Unused {
		if !slices.Contains(keysOutsideTheStruct, key) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	paths := settingPaths(reflect.TypeOf(Config{}), "")
	known := settingNames(paths)
	for i, key := range unknown {
		// The whole dotted name of a setting (kafka.bootstrap, a sink's index.ts), written as
		// one key in the file: only the nested form is read there.
		if slices.Contains(paths, indexes.ReplaceAllString(key, "")) {
			unknown[i] = key + " (a dotted name: nest it, one level per part)"
			continue
		}
		if s := closest(lastPart(key), known); s != "" {
			unknown[i] = fmt.Sprintf("%s (did you mean %s?)", key, s)
		}
	}
	return fmt.Errorf("config: unknown keys (from the file or OKP_ environment variables): %s", strings.Join(unknown, ", "))
}

// durationNeedsUnit refuses a number for a duration: YAML's `drain_timeout: 30` would otherwise
// be 30 nanoseconds.
func durationNeedsUnit(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) || from == to { // flags give durations as such
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() { // 0 is 0 in every unit
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("%v is a number: a duration needs a unit, like \"%vs\" or \"%vms\"", data, data, data)
	}
	return data, nil
}

// dayDuration is a number of days in a duration string ("1d", "1.5d12h").
var dayDuration = regexp.MustCompile(`([0-9]+(?:\.[0-9]+)?)d`)

// durationDays turns days into hours, as koanf's default decoder (used before decode) did: a
// "1d" that loaded then loads now.
func durationDays(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) || from.Kind() != reflect.String {
		return data, nil
	}
	return dayDuration.ReplaceAllStringFunc(reflect.ValueOf(data).String(), func(d string) string {
		n, err := strconv.ParseFloat(strings.TrimSuffix(d, "d"), 64)
		if err != nil {
			return d
		}
		return strconv.FormatFloat(n*24, 'f', -1, 64) + "h"
	}), nil
}

// settingNames lists the last parts of paths (the names a typo is compared with), and the keys
// Load reads itself.
func settingNames(paths []string) []string {
	out := make([]string, 0, len(paths)+len(keysOutsideTheStruct))
	for _, p := range paths {
		out = append(out, lastPart(p))
	}
	return append(out, keysOutsideTheStruct...)
}

// indexes are the list positions in a key: "sinks[0].index.ts" → "sinks.index.ts".
var indexes = regexp.MustCompile(`\[[0-9]+\]`)

// settingPaths lists the full dotted koanf paths of t's fields (a list's elements under the
// list's name: sinks.index.ts).
func settingPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, prefix+name)
		out = append(out, settingPaths(f.Type, prefix+name+".")...)
	}
	return out
}

// lastPart is the name a key ends with: "sinks[0].auto_creat" → "auto_creat".
func lastPart(key string) string {
	if i := strings.LastIndexAny(key, ".]"); i >= 0 {
		return strings.TrimPrefix(key[i+1:], ".")
	}
	return key
}

// closest returns the name within two edits of s, if there is one.
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
