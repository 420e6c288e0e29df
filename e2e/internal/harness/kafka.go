package harness

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaOptions describes the in-process kfake cluster the tests and the benchmark run against.
type KafkaOptions struct {
	// Brokers is the number of broker nodes (node ids 0..Brokers-1); 0 means 3.
	Brokers int
	// Partitions is the partition count of the seeded topics and of auto-created ones; 0 means 6.
	Partitions int32
	// Topics are created at start. kafka-python (Metadata v1) cannot auto-create on kfake, so
	// tests using it must seed their topics here.
	Topics []string
	// Blackhole makes the brokers acknowledge produce requests without storing the records, which
	// keeps broker memory flat in throughput benchmarks. Nothing can be consumed back.
	Blackhole bool
	// Extra options appended last, e.g. kfake.MaxVersions.
	Extra []kfake.Opt
}

// StartKafka starts a kfake cluster on free loopback ports. It always allows auto topic creation
// (honoured for Metadata v4+ requests). The caller must Close the cluster.
func StartKafka(o KafkaOptions) (*kfake.Cluster, error) {
	if o.Brokers == 0 {
		o.Brokers = 3
	}
	if o.Partitions == 0 {
		o.Partitions = 6
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(o.Brokers),
		kfake.DefaultNumPartitions(int(o.Partitions)),
		kfake.AllowAutoTopicCreation(),
	}
	if len(o.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(o.Partitions, o.Topics...))
	}
	if o.Blackhole {
		opts = append(opts, kfake.BlackholeProduce())
	}
	opts = append(opts, o.Extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake with %d brokers: %w", o.Brokers, err)
	}
	return c, nil
}
