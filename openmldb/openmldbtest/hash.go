package openmldbtest

import "encoding/binary"

// hashSeed is the seed OpenMLDB's base::hash64 passes to MurmurHash64A.
const hashSeed = 0xe17a1465

// murmur64A is the 64-bit MurmurHash2 ("64A") by Austin Appleby.
func murmur64A(data []byte, seed uint64) uint64 {
	const m = 0xc6a4a7935bd1e995
	const r = 47
	h := seed ^ uint64(len(data))*m
	for len(data) >= 8 {
		k := binary.LittleEndian.Uint64(data)
		k *= m
		k ^= k >> r
		k *= m
		h ^= k
		h *= m
		data = data[8:]
	}
	if len(data) > 0 {
		for i := len(data) - 1; i >= 0; i-- {
			h ^= uint64(data[i]) << (8 * uint(i))
		}
		h *= m
	}
	h ^= h >> r
	h *= m
	h ^= h >> r
	return h
}

// hash64 is OpenMLDB's key hash: MurmurHash64A made non-negative.
func hash64(key string) int64 {
	v := int64(murmur64A([]byte(key), hashSeed))
	if v < 0 {
		v = -v
	}
	return v
}

// pidOf is the partition a key belongs to among n partitions.
func pidOf(key string, n int) uint32 {
	return uint32(hash64(key) % int64(n))
}
