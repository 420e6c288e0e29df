package tee

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb"
	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/protocol/connect"
)

// TestConcurrentConvert shares one Parser and one Converter between goroutines that alternate
// schemas, so the schema cache and the plan cache are read and replaced concurrently
// (meaningful under -race).
func TestConcurrentConvert(t *testing.T) {
	cols := []openmldb.Column{col("a", openmldb.TypeInt), col("b", openmldb.TypeString)}
	c, err := NewConverter(cols, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := connect.NewParser(1) // a cache of one entry forces constant replacement
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rec connect.Record
			var row openmldb.Row
			for i := range 500 {
				var doc []byte
				if (i+g)%2 == 0 {
					doc = env(`{"field":"a","type":"int32"},{"field":"b","type":"string"}`, fmt.Sprintf(`{"a":%d,"b":"x"}`, i))
				} else {
					doc = env(`{"field":"b","type":"string"},{"field":"a","type":"int16"}`, fmt.Sprintf(`{"b":"x","a":%d}`, i))
				}
				if err := p.Parse(doc, &rec); err != nil {
					errs <- err
					return
				}
				var err error
				if row, err = c.Convert(&rec, row); err != nil {
					errs <- err
					return
				}
				if want := (openmldb.Row{openmldb.Int(int64(i)), openmldb.Str("x")}); !reflect.DeepEqual(row, want) {
					errs <- fmt.Errorf("row %+v, want %+v", row, want)
					return
				}
				if row, err = c.ConvertJSON([]byte(fmt.Sprintf(`{"a":%d}`, i)), row); err != nil || row[0].I != int64(i) {
					errs <- fmt.Errorf("ConvertJSON: %v %+v", err, row)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func FuzzConvertJSON(f *testing.F) {
	f.Add([]byte(`{"c1_int16":1,"c2_int32":2,"c3_int64":3,"c4_float":4.4,"c5_double":5.555,"c6_boolean":true,"c7_string":"c77777","c8_date":"2022-04-27","c9_timestamp":1651051906000}`))
	f.Add([]byte(`{"c1_int16":1e2,"c8_date":"1900-01-01"}`))
	c, err := NewConverter(seedColumns(), ConvertOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		row, err := c.ConvertJSON(data, nil)
		if err != nil {
			if _, ok := err.(*RecordError); !ok {
				t.Fatalf("error %v is %T, want *RecordError", err, err)
			}
			return
		}
		if !json.Valid(data) || len(row) != len(seedColumns()) {
			t.Fatalf("accepted %q as %+v", data, row)
		}
		if v := row[0]; v.Valid && (v.I < -32768 || v.I > 32767) {
			t.Fatalf("SMALLINT out of range: %d", v.I)
		}
		if v := row[8]; v.Valid && v.I < 0 {
			t.Fatalf("negative timestamp %d", v.I)
		}
	})
}
