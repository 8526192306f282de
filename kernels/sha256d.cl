// sha256d.cl: one nonce per work item, the CPU backends' tricks on a GPU.
//
// The host (miner/src/opencl) precomputes per job and version, exactly as for the CPU
// kernels (miner/src/hash/prepare.rs):
//   mid0, mid1 : the midstate, SHA-256 state after the header's first 64 bytes;
//   st0, st1   : rounds 0..3 of block 2 done once: (a4, e4, b, c | d, f, g, h), where round
//                4 starts from a = a4 + W3 and e = e4 + W3 (W3: the only word the nonce
//                changes);
//   sched      : (W16, W17, c18, c19), the message words that do not depend on the nonce
//                folded into constants; target_top: the filter below.
// (Vectors of four: the `ocl` crate's 8-wide uint type is not laid out as OpenCL's.)
// The second hash's constant padding (word 8 = 0x80000000, word 15 = 256) is written in as
// literals, and only its last state word is computed to the end: rounds 57..60 need only
// `e`, and H7 = e(round 60) + IV7.
//
// Filter: a hash can meet the target only if its most significant 32 bits (H7 byte-swapped)
// are at most the target's top 32 bits (`target_top`). At difficulty >= 1 that top word is
// 0 and the filter is the classic "H7 == 0" early exit; below difficulty 1 it is a real
// compare. Either way it lets through a superset; the host re-checks every candidate with
// the reference sha256d on the CPU.
//
// Candidates go to `out`: out[0] is an atomic counter, out[1..=capacity] the nonces. The
// host sizes the buffer and rescans a launch on the CPU if the counter passes capacity.
//
// Only OpenCL C 1.2 built-ins (rotate, bitselect, atomic_inc): NVIDIA, AMD, Intel and PoCL.

#define ROTR(x, n) rotate((uint)(x), (uint)(32 - (n)))
#define CH(x, y, z) bitselect((z), (y), (x))
#define MAJ(x, y, z) bitselect((x), (y), (x) ^ (z))
#define BSIG0(x) (ROTR((x), 2) ^ ROTR((x), 13) ^ ROTR((x), 22))
#define BSIG1(x) (ROTR((x), 6) ^ ROTR((x), 11) ^ ROTR((x), 25))
#define SSIG0(x) (ROTR((x), 7) ^ ROTR((x), 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR((x), 17) ^ ROTR((x), 19) ^ ((x) >> 10))

// K[64], the SHA-256 round constants, is prepended by the host from the same table the
// CPU backends use (miner/src/hash/sha.rs), so there is one copy of it.

#define IV0 0x6a09e667u
#define IV1 0xbb67ae85u
#define IV2 0x3c6ef372u
#define IV3 0xa54ff53au
#define IV4 0x510e527fu
#define IV5 0x9b05688cu
#define IV6 0x1f83d9abu
#define IV7 0x5be0cd19u

// One round on the state array s = (a b c d e f g h), shifting the roles.
#define ROUND(s, kw)                                                                    \
    {                                                                                   \
        uint t1 = s[7] + BSIG1(s[4]) + CH(s[4], s[5], s[6]) + (kw);                     \
        uint t2 = BSIG0(s[0]) + MAJ(s[0], s[1], s[2]);                                  \
        s[7] = s[6]; s[6] = s[5]; s[5] = s[4]; s[4] = s[3] + t1;                        \
        s[3] = s[2]; s[2] = s[1]; s[1] = s[0]; s[0] = t1 + t2;                          \
    }

__kernel void sha256d_search(const uint nonce_base, const uint4 mid0, const uint4 mid1,
                             const uint4 st0, const uint4 st1, const uint4 sched,
                             const uint target_top, const uint count,
                             const uint capacity, __global volatile uint *out)
{
    // The launch is rounded up to whole work groups; the items past `count` do nothing.
    if (get_global_id(0) >= count) return;
    const uint nonce = nonce_base + (uint)get_global_id(0);
    // The header stores the nonce little-endian; block 2 reads it as a big-endian word.
    const uint w3 = rotate(nonce & 0x00ff00ffu, 24u) | rotate(nonce & 0xff00ff00u, 8u);

    // ---- block 2 of the first hash: message schedule ----
    uint w[64];
    w[0] = 0; w[1] = 0; w[2] = 0; // rounds 0..2 are in `state` already
    w[3] = w3;
    w[4] = 0x80000000u;
#pragma unroll
    for (int t = 5; t < 15; t++) w[t] = 0;
    w[15] = 640u;
    w[16] = sched.s0;
    w[17] = sched.s1;
    w[18] = sched.s2 + SSIG0(w3);
    w[19] = sched.s3 + w3;
#pragma unroll
    for (int t = 20; t < 64; t++)
        w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];

    // ---- rounds 4..63 from the precomputed state ----
    uint s[8];
    s[0] = st0.s0 + w3; s[1] = st0.s2; s[2] = st0.s3; s[3] = st1.s0;
    s[4] = st0.s1 + w3; s[5] = st1.s1; s[6] = st1.s2; s[7] = st1.s3;
#pragma unroll
    for (int t = 4; t < 64; t++) ROUND(s, K[t] + w[t]);

    // ---- second hash: the 32-byte digest, padded ----
    uint u[64];
    u[0] = s[0] + mid0.s0; u[1] = s[1] + mid0.s1; u[2] = s[2] + mid0.s2; u[3] = s[3] + mid0.s3;
    u[4] = s[4] + mid1.s0; u[5] = s[5] + mid1.s1; u[6] = s[6] + mid1.s2; u[7] = s[7] + mid1.s3;
    u[8] = 0x80000000u;
#pragma unroll
    for (int t = 9; t < 15; t++) u[t] = 0;
    u[15] = 256u;
#pragma unroll
    for (int t = 16; t < 61; t++)
        u[t] = SSIG1(u[t - 2]) + u[t - 7] + SSIG0(u[t - 15]) + u[t - 16];

    uint v[8] = {IV0, IV1, IV2, IV3, IV4, IV5, IV6, IV7};
#pragma unroll
    for (int t = 0; t < 57; t++) ROUND(v, K[t] + u[t]);
    // Rounds 57..60: only `e` matters from here; after round 60 it is the final `h`.
#pragma unroll
    for (int t = 57; t < 61; t++) {
        uint t1 = v[7] + BSIG1(v[4]) + CH(v[4], v[5], v[6]) + K[t] + u[t];
        v[7] = v[6]; v[6] = v[5]; v[5] = v[4]; v[4] = v[3] + t1;
        v[3] = v[2]; v[2] = v[1]; v[1] = v[0]; v[0] = 0;
    }
    const uint h7 = v[4] + IV7;
    const uint top = rotate(h7 & 0x00ff00ffu, 24u) | rotate(h7 & 0xff00ff00u, 8u);
    if (top <= target_top) {
        uint slot = atomic_inc(&out[0]);
        if (slot < capacity) out[1 + slot] = nonce;
    }
}
