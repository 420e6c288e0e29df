package openmldbtest

import (
	"context"
	"encoding/binary"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/openmldb/pb/apipb"
)

// readTarget resolves a read request's partition replica and index on this tablet. Reads are
// served by followers too, like OpenMLDB's CheckTable(..., false).
func (t *tablet) readTarget(tid, pid uint32, idxName string) (*table, *partition, *indexStore, int32, string) {
	tb := t.c.tableByID(tid)
	part := t.partition(tid, pid)
	if tb == nil || part == nil {
		return nil, nil, nil, codeTableNotExist, "table is not exist"
	}
	idx, ok := tb.indexByName(idxName)
	if !ok {
		return nil, nil, nil, codeIdxNameNotFound, "idx name not found"
	}
	return tb, part, part.indexes[idx], codeOK, ""
}

func matchTS(typ apipb.GetType, ets, ts uint64) bool {
	switch typ {
	case apipb.GetType_kSubKeyLt:
		return ets < ts
	case apipb.GetType_kSubKeyLe:
		return ets <= ts
	case apipb.GetType_kSubKeyGt:
		return ets > ts
	case apipb.GetType_kSubKeyGe:
		return ets >= ts
	}
	return ets == ts
}

// get implements TabletServer.Get: ts 0 returns the newest row of the key.
func (t *tablet) get(_ context.Context, req *apipb.GetRequest) (*apipb.GetResponse, *rpcError) {
	_, part, store, code, msg := t.readTarget(req.GetTid(), req.GetPid(), req.GetIdxName())
	if code != codeOK {
		return &apipb.GetResponse{Code: proto.Int32(code), Msg: proto.String(msg)}, nil
	}
	part.mu.RLock()
	defer part.mu.RUnlock()
	l := store.keys[req.GetKey()]
	if l != nil {
		es := l.ordered()
		for i := range es {
			e := newest(es, i)
			if req.GetTs() != 0 && !matchTS(req.GetType(), e.ts, req.GetTs()) {
				continue
			}
			if req.GetEt() != 0 && !matchTS(req.GetEtType(), e.ts, req.GetEt()) {
				break
			}
			return &apipb.GetResponse{Code: proto.Int32(codeOK), Key: proto.String(req.GetKey()),
				Ts: proto.Uint64(e.ts), Value: e.row}, nil
		}
	}
	return &apipb.GetResponse{Code: proto.Int32(codeKeyNotFound), Msg: proto.String("key not found")}, nil
}

// scan implements TabletServer.Scan: newest first, st inclusive upper bound (0 = newest),
// et exclusive lower bound (0 = oldest); pairs are [u32 LE 8+len(row)][u64 LE ts][row].
func (t *tablet) scan(_ context.Context, req *apipb.ScanRequest) (*apipb.ScanResponse, *rpcError) {
	if req.GetSt() < req.GetEt() {
		return &apipb.ScanResponse{Code: proto.Int32(codeStLessThanEt), Msg: proto.String("starttime less than endtime")}, nil
	}
	if req.GetUseAttachment() {
		return &apipb.ScanResponse{Code: proto.Int32(codeInvalidParameter), Msg: proto.String("use_attachment is not supported by openmldbtest")}, nil
	}
	_, part, store, code, msg := t.readTarget(req.GetTid(), req.GetPid(), req.GetIdxName())
	if code != codeOK {
		return &apipb.ScanResponse{Code: proto.Int32(code), Msg: proto.String(msg)}, nil
	}
	part.mu.RLock()
	defer part.mu.RUnlock()
	var pairs []byte
	count := uint32(0)
	if l := store.keys[req.GetPk()]; l != nil {
		es := l.ordered()
		for i := range es {
			e := newest(es, i)
			if req.GetSt() != 0 && e.ts > req.GetSt() {
				continue
			}
			if req.GetEt() != 0 && e.ts <= req.GetEt() {
				break
			}
			if req.GetLimit() != 0 && count >= req.GetLimit() {
				break
			}
			pairs = binary.LittleEndian.AppendUint32(pairs, uint32(8+len(e.row)))
			pairs = binary.LittleEndian.AppendUint64(pairs, e.ts)
			pairs = append(pairs, e.row...)
			count++
		}
	}
	return &apipb.ScanResponse{Code: proto.Int32(codeOK), Pairs: pairs, Count: proto.Uint32(count),
		BufSize: proto.Uint32(uint32(len(pairs))), IsFinish: proto.Bool(true)}, nil
}

// count implements TabletServer.Count for one key (a missing key counts 0).
func (t *tablet) count(_ context.Context, req *apipb.CountRequest) (*apipb.CountResponse, *rpcError) {
	_, part, store, code, msg := t.readTarget(req.GetTid(), req.GetPid(), req.GetIdxName())
	if code != codeOK {
		return &apipb.CountResponse{Code: proto.Int32(code), Msg: proto.String(msg)}, nil
	}
	part.mu.RLock()
	defer part.mu.RUnlock()
	n := 0
	if l := store.keys[req.GetKey()]; l != nil {
		n = len(l.entries)
	}
	return &apipb.CountResponse{Code: proto.Int32(codeOK), Count: proto.Uint32(uint32(n))}, nil
}

// traverse implements TabletServer.Traverse over one index of one partition: keys in byte order,
// each key newest first. A page resumes after (pk, ts, ts_pos) of the previous response, where
// ts_pos counts the records of that pk and ts already returned. limit 0 returns everything but
// reports is_finish=false, like OpenMLDB; otherwise is_finish is set once a page comes back
// short, so a client must be ready for a final empty page. Pairs are
// [u32 LE 8+len(pk)+len(row)][u32 LE len(pk)][u64 LE ts][pk][row].
func (t *tablet) traverse(_ context.Context, req *apipb.TraverseRequest) (*apipb.TraverseResponse, *rpcError) {
	_, part, store, code, msg := t.readTarget(req.GetTid(), req.GetPid(), req.GetIdxName())
	if code != codeOK {
		return &apipb.TraverseResponse{Code: proto.Int32(code), Msg: proto.String(msg)}, nil
	}
	limit := req.GetLimit()
	part.mu.Lock()
	defer part.mu.Unlock()
	keys := store.sortedKeys()
	start := 0
	resume := false
	curPk, curTs, curPos := "", uint64(0), uint32(0)
	if pk := req.GetPk(); pk != "" {
		start = sort.SearchStrings(keys, pk)
		if start < len(keys) && keys[start] == pk {
			if req.GetSkipCurrentPk() {
				start++
			} else {
				resume = true
				curPk, curTs, curPos = pk, req.GetTs(), req.GetTsPos()
			}
		}
	}
	var pairs []byte
	count := uint32(0)
outer:
	for ki := start; ki < len(keys); ki++ {
		k := keys[ki]
		l := store.keys[k]
		es := l.ordered()
		from := 0
		if resume && ki == start {
			// Skip, newest first, the entries above ts and the ts_pos of ts returned already:
			// found by search, so paging through a long key costs each page its own length.
			above := sort.Search(len(es), func(i int) bool { return es[i].ts > req.GetTs() })
			atOrAbove := sort.Search(len(es), func(i int) bool { return es[i].ts >= req.GetTs() })
			from = len(es) - above + min(int(req.GetTsPos()), above-atOrAbove)
		}
		for i := from; i < len(es); i++ {
			e := newest(es, i)
			if limit != 0 && count >= limit {
				break outer
			}
			pairs = binary.LittleEndian.AppendUint32(pairs, uint32(8+len(k)+len(e.row)))
			pairs = binary.LittleEndian.AppendUint32(pairs, uint32(len(k)))
			pairs = binary.LittleEndian.AppendUint64(pairs, e.ts)
			pairs = append(pairs, k...)
			pairs = append(pairs, e.row...)
			count++
			if k == curPk && e.ts == curTs {
				curPos++
			} else {
				curPk, curTs, curPos = k, e.ts, 1
			}
		}
	}
	resp := &apipb.TraverseResponse{Code: proto.Int32(codeOK), Pairs: pairs, Count: proto.Uint32(count),
		Pk: proto.String(curPk), Ts: proto.Uint64(curTs), TsPos: proto.Uint32(curPos),
		IsFinish: proto.Bool(limit != 0 && count < limit)}
	return resp, nil
}
