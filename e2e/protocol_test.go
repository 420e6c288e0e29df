package e2e

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/openmldb-kafka-proxy/openmldb-kafka-proxy/e2e/internal/harness"
)

// apiRanges asks the bootstrap listener for its ApiVersions (v3, or v0 after a KIP-511 fallback).
func (e *env) apiRanges(t *testing.T) map[int16][2]int16 {
	t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName = "okp-e2e"
	req.ClientSoftwareVersion = "1.0"
	resp, err := harness.RawRequest(testContext(t, 10*time.Second), e.bootstrap, req)
	if err != nil {
		t.Fatal(err)
	}
	av := resp.(*kmsg.ApiVersionsResponse)
	if av.ErrorCode != 0 {
		t.Fatalf("ApiVersions v3: error code %d", av.ErrorCode)
	}
	out := map[int16][2]int16{}
	for _, k := range av.ApiKeys {
		out[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	return out
}

func hostPort(h string, p int32) string { return net.JoinHostPort(h, strconv.Itoa(int(p))) }

// TestApiVersionsKeepsProduceMinZero checks the proxy's ApiVersions answer offers Produce from v0:
// librdkafka 2.0.2 stops compressing otherwise (see TestKcatGzipCompresses).
func TestApiVersionsKeepsProduceMinZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.apiRanges(t)
	produce, ok := r[0]
	if !ok {
		t.Fatal("ApiVersions does not list Produce")
	}
	if suite.direct {
		t.Skipf("direct mode: kfake offers Produce v%d-v%d", produce[0], produce[1])
	}
	if produce[0] != 0 {
		t.Fatalf("Produce versions v%d-v%d through the proxy, want minimum 0", produce[0], produce[1])
	}
}

// TestMetadataAddressesEveryVersion sends Metadata at every version the proxy offers and checks
// every broker (and the controller) is advertised at the proxy's listener for its node id.
func TestMetadataAddressesEveryVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "meta-all")
	rng, ok := e.apiRanges(t)[3]
	if !ok {
		t.Fatal("ApiVersions does not list Metadata")
	}
	for v := rng[0]; v <= rng[1]; v++ {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = v
		if v == 0 {
			// v0 has no null "all topics": name the topic.
			rt := kmsg.NewMetadataRequestTopic()
			name := "meta-all"
			rt.Topic = &name
			req.Topics = append(req.Topics, rt)
		}
		resp, err := harness.RawRequest(testContext(t, 10*time.Second), e.bootstrap, req)
		if err != nil {
			t.Fatalf("Metadata v%d: %v", v, err)
		}
		md := resp.(*kmsg.MetadataResponse)
		nodes := map[int32]string{}
		for _, b := range md.Brokers {
			nodes[b.NodeID] = hostPort(b.Host, b.Port)
		}
		e.checkNodes(t, "Metadata v"+strconv.Itoa(int(v)), nodes)
		found := false
		for _, tp := range md.Topics {
			if tp.Topic != nil && *tp.Topic == "meta-all" {
				found = true
				if len(tp.Partitions) != numPartitions || tp.ErrorCode != 0 {
					t.Errorf("Metadata v%d: topic meta-all error %d with %d partitions", v, tp.ErrorCode, len(tp.Partitions))
				}
			}
		}
		if !found {
			t.Errorf("Metadata v%d does not list meta-all", v)
		}
	}
}

// TestFindCoordinatorAddressesEveryVersion checks FindCoordinator answers (single-key v0-v3 and
// batched v4+) point at the proxy's listener of the coordinator's node.
func TestFindCoordinatorAddressesEveryVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rng, ok := e.apiRanges(t)[10]
	if !ok {
		t.Fatal("ApiVersions does not list FindCoordinator")
	}
	groups := []string{"okp-g1", "okp-g2", "okp-g3", "okp-g4"}
	for v := rng[0]; v <= rng[1]; v++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version = v
		if v < 4 {
			req.CoordinatorKey = groups[0]
		} else {
			req.CoordinatorKeys = groups
		}
		resp, err := harness.RawRequest(testContext(t, 10*time.Second), e.bootstrap, req)
		if err != nil {
			t.Fatalf("FindCoordinator v%d: %v", v, err)
		}
		fc := resp.(*kmsg.FindCoordinatorResponse)
		learned := map[int32][]string{}
		if v < 4 {
			if fc.ErrorCode != 0 {
				t.Fatalf("FindCoordinator v%d: error code %d", v, fc.ErrorCode)
			}
			learned[fc.NodeID] = []string{hostPort(fc.Host, fc.Port)}
		} else {
			if len(fc.Coordinators) != len(groups) {
				t.Fatalf("FindCoordinator v%d: %d coordinators for %d keys", v, len(fc.Coordinators), len(groups))
			}
			for _, c := range fc.Coordinators {
				if c.ErrorCode != 0 {
					t.Fatalf("FindCoordinator v%d key %s: error code %d", v, c.Key, c.ErrorCode)
				}
				learned[c.NodeID] = append(learned[c.NodeID], hostPort(c.Host, c.Port))
			}
		}
		e.checkLearned(t, "FindCoordinator v"+strconv.Itoa(int(v)), learned)
	}
}

// TestDescribeClusterAddresses checks DescribeCluster (admin clients) lists proxy addresses, when
// the proxy offers the key.
func TestDescribeClusterAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rng, ok := e.apiRanges(t)[60]
	if !ok {
		t.Skip("the proxy does not offer DescribeCluster")
	}
	for v := rng[0]; v <= rng[1]; v++ {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.Version = v
		resp, err := harness.RawRequest(testContext(t, 10*time.Second), e.bootstrap, req)
		if err != nil {
			t.Fatalf("DescribeCluster v%d: %v", v, err)
		}
		dc := resp.(*kmsg.DescribeClusterResponse)
		if dc.ErrorCode != 0 {
			t.Fatalf("DescribeCluster v%d: error code %d", v, dc.ErrorCode)
		}
		nodes := map[int32]string{}
		for _, b := range dc.Brokers {
			nodes[b.NodeID] = hostPort(b.Host, b.Port)
		}
		e.checkNodes(t, "DescribeCluster v"+strconv.Itoa(int(v)), nodes)
	}
}
