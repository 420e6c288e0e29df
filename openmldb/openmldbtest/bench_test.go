package openmldbtest

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
)

// BenchmarkServerPut measures the cluster's own Put cost: pipelined Puts (64 in flight) on one
// connection to a standalone tablet, each fully decoded, key-checked and stored.
func BenchmarkServerPut(b *testing.B) {
	c, err := Start(b.Context(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ns := dial(b, c.Nameserver())
	gr := &nspb.GeneralResponse{}
	ns.ns("CreateDatabase", &nspb.CreateDatabaseRequest{Db: proto.String("d")}, gr)
	ns.ns("CreateTable", &nspb.CreateTableRequest{TableInfo: seedTableInfo("d", "t", 1, 1)}, gr)
	l := showTable(b, ns, "d", "t")
	reqs := make([][]byte, 1024)
	for i := range reqs {
		req := seedPuts(b, l, seedCells(i))[0]
		reqs[i], _ = proto.Marshal(req)
	}
	tc := dial(b, l.leaders[0])
	const window = 64
	inflight := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if inflight == window {
			if _, err := tc.recv(); err != nil {
				b.Fatal(err)
			}
			inflight--
		}
		tc.sendRaw("Put", reqs[i%len(reqs)])
		inflight++
	}
	for ; inflight > 0; inflight-- {
		if _, err := tc.recv(); err != nil {
			b.Fatal(err)
		}
	}
}
