package openmldb

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/nspb"
)

// loadFromNameserver builds a catalog with ShowTablet + ShowTable on the nameserver at addr,
// as StandAloneSDK does. It works in cluster mode too.
func loadFromNameserver(ctx context.Context, pool *rpcPool, addr string) (*catalog, []error, error) {
	tr := &nspb.ShowTabletResponse{}
	if err := pool.call(ctx, addr, NameServerService, "ShowTablet", &nspb.ShowTabletRequest{}, tr); err != nil {
		return nil, nil, err
	}
	if tr.GetCode() != 0 {
		return nil, nil, &ServerError{Method: "ShowTablet", Code: tr.GetCode(), Msg: tr.GetMsg()}
	}
	tablets := map[string]string{}
	for _, ts := range tr.GetTablets() {
		if ts.GetState() == "kTabletOffline" {
			continue
		}
		a := ts.GetRealEndpoint()
		if a == "" {
			a = ts.GetEndpoint()
		}
		tablets[ts.GetEndpoint()] = a
	}
	sr := &nspb.ShowTableResponse{}
	if err := pool.call(ctx, addr, NameServerService, "ShowTable", &nspb.ShowTableRequest{ShowAll: proto.Bool(true)}, sr); err != nil {
		return nil, nil, err
	}
	if sr.GetCode() != 0 {
		return nil, nil, &ServerError{Method: "ShowTable", Code: sr.GetCode(), Msg: sr.GetMsg()}
	}
	var infos []*nspb.TableInfo
	for _, ti := range sr.GetTableInfo() {
		if ti.GetDb() == "" {
			continue // legacy tables without a database are invisible to the SQL SDK too
		}
		infos = append(infos, ti)
	}
	cat, errs := buildCatalog(tablets, infos, addr)
	if cat == nil {
		return nil, errs, fmt.Errorf("build catalog from %s", addr)
	}
	return cat, errs, nil
}
