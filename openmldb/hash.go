package openmldb

import "encoding/binary"

// hashSeed is the seed OpenMLDB's hash64 passes to MurmurHash64A (src/base/hash.h).
const hashSeed = 0xe17a1465

// murmurHash64A is Austin Appleby's 64-bit MurmurHash2 variant "64A".
func murmurHash64A(key string, seed uint64) uint64 {
	const m = 0xc6a4a7935bd1e995
	const r = 47
	h := seed ^ (uint64(len(key)) * m)
	i := 0
	for ; i+8 <= len(key); i += 8 {
		k := binary.LittleEndian.Uint64([]byte(key[i : i+8]))
		k *= m
		k ^= k >> r
		k *= m
		h ^= k
		h *= m
	}
	if tail := len(key) - i; tail > 0 {
		for j := tail - 1; j >= 0; j-- {
			h ^= uint64(key[i+j]) << (8 * j)
		}
		h *= m
	}
	h ^= h >> r
	h *= m
	h ^= h >> r
	return h
}

// Hash64 is OpenMLDB's key hash: MurmurHash64A with seed 0xe17a1465, made non-negative.
func Hash64(key string) int64 {
	h := int64(murmurHash64A(key, hashSeed))
	if h < 0 {
		h = -h // MinInt64 stays negative, as in C++; PartitionOf handles it
	}
	return h
}

// PartitionOf returns the partition id a key belongs to among n partitions.
func PartitionOf(key string, n int) uint32 {
	p := Hash64(key) % int64(n)
	if p < 0 {
		p = -p
	}
	return uint32(p)
}
