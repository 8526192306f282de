//! CashAddr against the spec's and Bitcoin Cash Node's vectors (bitcoincash.org
//! `spec/cashaddr.md` @ 3e2e6da8; BCHN `src/test/cashaddr_tests.cpp` and
//! `cashaddrenc_tests.cpp` @ 631badbf), and hand-made cases around them.

use super::*;

/// BCHN `test_vectors`: (hash bytes, type, prefix, hash hex, address). The spec's table
/// and token-aware types 2 and 3.
const VECTORS: &[(usize, u8, &str, &str, &str)] = &[
    (
        20,
        0,
        "bitcoincash",
        "f5bf48b397dae70be82b3cca4793f8eb2b6cdac9",
        "bitcoincash:qr6m7j9njldwwzlg9v7v53unlr4jkmx6eylep8ekg2",
    ),
    (
        20,
        2,
        "bitcoincash",
        "f5bf48b397dae70be82b3cca4793f8eb2b6cdac9",
        "bitcoincash:zr6m7j9njldwwzlg9v7v53unlr4jkmx6eycnjehshe",
    ),
    (
        20,
        1,
        "bchtest",
        "f5bf48b397dae70be82b3cca4793f8eb2b6cdac9",
        "bchtest:pr6m7j9njldwwzlg9v7v53unlr4jkmx6eyvwc0uz5t",
    ),
    (
        20,
        3,
        "bchtest",
        "f5bf48b397dae70be82b3cca4793f8eb2b6cdac9",
        "bchtest:rr6m7j9njldwwzlg9v7v53unlr4jkmx6eytyt3jytc",
    ),
    (
        20,
        15,
        "prefix",
        "f5bf48b397dae70be82b3cca4793f8eb2b6cdac9",
        "prefix:0r6m7j9njldwwzlg9v7v53unlr4jkmx6ey3qnjwsrf",
    ),
    (
        20,
        0,
        "bchreg",
        "d85c2b71d0060b09c9886aeb815e50991dda124d",
        "bchreg:qrv9c2m36qrqkzwf3p4whq272zv3mksjf5ln6v9le5",
    ),
    (
        20,
        2,
        "bchreg",
        "d85c2b71d0060b09c9886aeb815e50991dda124d",
        "bchreg:zrv9c2m36qrqkzwf3p4whq272zv3mksjf5cefjtex8",
    ),
    (
        20,
        0,
        "bchreg",
        "00aea9a2e5f0f876a588df5546e8742d1d87008f",
        "bchreg:qqq2a2dzuhc0sa493r0423hgwsk3mpcq3upac4z3wr",
    ),
    (
        20,
        2,
        "bchreg",
        "00aea9a2e5f0f876a588df5546e8742d1d87008f",
        "bchreg:zqq2a2dzuhc0sa493r0423hgwsk3mpcq3uxhttvh3s",
    ),
    (
        24,
        0,
        "bitcoincash",
        "7adbf6c17084bc86c1706827b41a56f5ca32865925e946ea",
        "bitcoincash:q9adhakpwzztepkpwp5z0dq62m6u5v5xtyj7j3h2ws4mr9g0",
    ),
    (
        24,
        2,
        "bitcoincash",
        "7adbf6c17084bc86c1706827b41a56f5ca32865925e946ea",
        "bitcoincash:z9adhakpwzztepkpwp5z0dq62m6u5v5xtyj7j3h2upmv9v72",
    ),
    (
        24,
        1,
        "bchtest",
        "7adbf6c17084bc86c1706827b41a56f5ca32865925e946ea",
        "bchtest:p9adhakpwzztepkpwp5z0dq62m6u5v5xtyj7j3h2u94tsynr",
    ),
    (
        24,
        3,
        "bchtest",
        "7adbf6c17084bc86c1706827b41a56f5ca32865925e946ea",
        "bchtest:r9adhakpwzztepkpwp5z0dq62m6u5v5xtyj7j3h2w5mukd9x",
    ),
    (
        24,
        15,
        "prefix",
        "7adbf6c17084bc86c1706827b41a56f5ca32865925e946ea",
        "prefix:09adhakpwzztepkpwp5z0dq62m6u5v5xtyj7j3h2p29kc2lp",
    ),
    (
        28,
        0,
        "bitcoincash",
        "3a84f9cf51aae98a3bb3a78bf16a6183790b18719126325bfc0c075b",
        "bitcoincash:qgagf7w02x4wnz3mkwnchut2vxphjzccwxgjvvjmlsxqwkcw59jxxuz",
    ),
    (
        28,
        2,
        "bitcoincash",
        "3a84f9cf51aae98a3bb3a78bf16a6183790b18719126325bfc0c075b",
        "bitcoincash:zgagf7w02x4wnz3mkwnchut2vxphjzccwxgjvvjmlsxqwkc8c9wvd0v",
    ),
    (
        28,
        1,
        "bchtest",
        "3a84f9cf51aae98a3bb3a78bf16a6183790b18719126325bfc0c075b",
        "bchtest:pgagf7w02x4wnz3mkwnchut2vxphjzccwxgjvvjmlsxqwkcvs7md7wt",
    ),
    (
        28,
        3,
        "bchtest",
        "3a84f9cf51aae98a3bb3a78bf16a6183790b18719126325bfc0c075b",
        "bchtest:rgagf7w02x4wnz3mkwnchut2vxphjzccwxgjvvjmlsxqwkc9u7884a9",
    ),
    (
        28,
        15,
        "prefix",
        "3a84f9cf51aae98a3bb3a78bf16a6183790b18719126325bfc0c075b",
        "prefix:0gagf7w02x4wnz3mkwnchut2vxphjzccwxgjvvjmlsxqwkc5djw8s9g",
    ),
    (
        32,
        0,
        "bitcoincash",
        "3173ef6623c6b48ffd1a3dcc0cc6489b0a07bb47a37f47cfef4fe69de825c060",
        "bitcoincash:qvch8mmxy0rtfrlarg7ucrxxfzds5pamg73h7370aa87d80gyhqxq5nlegake",
    ),
    (
        32,
        2,
        "bitcoincash",
        "3173ef6623c6b48ffd1a3dcc0cc6489b0a07bb47a37f47cfef4fe69de825c060",
        "bitcoincash:zvch8mmxy0rtfrlarg7ucrxxfzds5pamg73h7370aa87d80gyhqxqxqrc3u0j",
    ),
    (
        32,
        1,
        "bchtest",
        "3173ef6623c6b48ffd1a3dcc0cc6489b0a07bb47a37f47cfef4fe69de825c060",
        "bchtest:pvch8mmxy0rtfrlarg7ucrxxfzds5pamg73h7370aa87d80gyhqxq7fqng6m6",
    ),
    (
        32,
        3,
        "bchtest",
        "3173ef6623c6b48ffd1a3dcc0cc6489b0a07bb47a37f47cfef4fe69de825c060",
        "bchtest:rvch8mmxy0rtfrlarg7ucrxxfzds5pamg73h7370aa87d80gyhqxqv6uj3mz3",
    ),
    (
        32,
        15,
        "prefix",
        "3173ef6623c6b48ffd1a3dcc0cc6489b0a07bb47a37f47cfef4fe69de825c060",
        "prefix:0vch8mmxy0rtfrlarg7ucrxxfzds5pamg73h7370aa87d80gyhqxqsh6jgp6w",
    ),
    (
        40,
        0,
        "bitcoincash",
        "c07138323e00fa4fc122d3b85b9628ea810b3f381706385e289b0b25631197d194b5c238beb136fb",
        "bitcoincash:qnq8zwpj8cq05n7pytfmskuk9r4gzzel8qtsvwz79zdskftrzxtar994cgutavfklv39gr3uvz",
    ),
    (
        40,
        2,
        "bitcoincash",
        "c07138323e00fa4fc122d3b85b9628ea810b3f381706385e289b0b25631197d194b5c238beb136fb",
        "bitcoincash:znq8zwpj8cq05n7pytfmskuk9r4gzzel8qtsvwz79zdskftrzxtar994cgutavfklvyjysntx8",
    ),
    (
        40,
        1,
        "bchtest",
        "c07138323e00fa4fc122d3b85b9628ea810b3f381706385e289b0b25631197d194b5c238beb136fb",
        "bchtest:pnq8zwpj8cq05n7pytfmskuk9r4gzzel8qtsvwz79zdskftrzxtar994cgutavfklvmgm6ynej",
    ),
    (
        40,
        3,
        "bchtest",
        "c07138323e00fa4fc122d3b85b9628ea810b3f381706385e289b0b25631197d194b5c238beb136fb",
        "bchtest:rnq8zwpj8cq05n7pytfmskuk9r4gzzel8qtsvwz79zdskftrzxtar994cgutavfklvwlhfxynh",
    ),
    (
        40,
        15,
        "prefix",
        "c07138323e00fa4fc122d3b85b9628ea810b3f381706385e289b0b25631197d194b5c238beb136fb",
        "prefix:0nq8zwpj8cq05n7pytfmskuk9r4gzzel8qtsvwz79zdskftrzxtar994cgutavfklvwsvctzqy",
    ),
    (
        48,
        0,
        "bitcoincash",
        "e361ca9a7f99107c17a622e047e3745d3e19cf804ed63c5c40c6ba763696b98241223d8ce62ad48d863f4cb18c930e4c",
        "bitcoincash:qh3krj5607v3qlqh5c3wq3lrw3wnuxw0sp8dv0zugrrt5a3kj6ucysfz8kxwv2k53krr7n933jfsunqex2w82sl",
    ),
    (
        48,
        2,
        "bitcoincash",
        "e361ca9a7f99107c17a622e047e3745d3e19cf804ed63c5c40c6ba763696b98241223d8ce62ad48d863f4cb18c930e4c",
        "bitcoincash:zh3krj5607v3qlqh5c3wq3lrw3wnuxw0sp8dv0zugrrt5a3kj6ucysfz8kxwv2k53krr7n933jfsunq4e575wfw",
    ),
    (
        48,
        1,
        "bchtest",
        "e361ca9a7f99107c17a622e047e3745d3e19cf804ed63c5c40c6ba763696b98241223d8ce62ad48d863f4cb18c930e4c",
        "bchtest:ph3krj5607v3qlqh5c3wq3lrw3wnuxw0sp8dv0zugrrt5a3kj6ucysfz8kxwv2k53krr7n933jfsunqnzf7mt6x",
    ),
    (
        48,
        3,
        "bchtest",
        "e361ca9a7f99107c17a622e047e3745d3e19cf804ed63c5c40c6ba763696b98241223d8ce62ad48d863f4cb18c930e4c",
        "bchtest:rh3krj5607v3qlqh5c3wq3lrw3wnuxw0sp8dv0zugrrt5a3kj6ucysfz8kxwv2k53krr7n933jfsunqlahwg0rh",
    ),
    (
        48,
        15,
        "prefix",
        "e361ca9a7f99107c17a622e047e3745d3e19cf804ed63c5c40c6ba763696b98241223d8ce62ad48d863f4cb18c930e4c",
        "prefix:0h3krj5607v3qlqh5c3wq3lrw3wnuxw0sp8dv0zugrrt5a3kj6ucysfz8kxwv2k53krr7n933jfsunqakcssnmn",
    ),
    (
        56,
        0,
        "bitcoincash",
        "d9fa7c4c6ef56dc4ff423baae6d495dbff663d034a72d1dc7d52cbfe7d1e6858f9d523ac0a7a5c34077638e4dd1a701bd017842789982041",
        "bitcoincash:qmvl5lzvdm6km38lgga64ek5jhdl7e3aqd9895wu04fvhlnare5937w4ywkq57juxsrhvw8ym5d8qx7sz7zz0zvcypqscw8jd03f",
    ),
    (
        56,
        2,
        "bitcoincash",
        "d9fa7c4c6ef56dc4ff423baae6d495dbff663d034a72d1dc7d52cbfe7d1e6858f9d523ac0a7a5c34077638e4dd1a701bd017842789982041",
        "bitcoincash:zmvl5lzvdm6km38lgga64ek5jhdl7e3aqd9895wu04fvhlnare5937w4ywkq57juxsrhvw8ym5d8qx7sz7zz0zvcypqswr8epnvt",
    ),
    (
        56,
        1,
        "bchtest",
        "d9fa7c4c6ef56dc4ff423baae6d495dbff663d034a72d1dc7d52cbfe7d1e6858f9d523ac0a7a5c34077638e4dd1a701bd017842789982041",
        "bchtest:pmvl5lzvdm6km38lgga64ek5jhdl7e3aqd9895wu04fvhlnare5937w4ywkq57juxsrhvw8ym5d8qx7sz7zz0zvcypqs6kgdsg2g",
    ),
    (
        56,
        3,
        "bchtest",
        "d9fa7c4c6ef56dc4ff423baae6d495dbff663d034a72d1dc7d52cbfe7d1e6858f9d523ac0a7a5c34077638e4dd1a701bd017842789982041",
        "bchtest:rmvl5lzvdm6km38lgga64ek5jhdl7e3aqd9895wu04fvhlnare5937w4ywkq57juxsrhvw8ym5d8qx7sz7zz0zvcypqsvmgxu5h2",
    ),
    (
        56,
        15,
        "prefix",
        "d9fa7c4c6ef56dc4ff423baae6d495dbff663d034a72d1dc7d52cbfe7d1e6858f9d523ac0a7a5c34077638e4dd1a701bd017842789982041",
        "prefix:0mvl5lzvdm6km38lgga64ek5jhdl7e3aqd9895wu04fvhlnare5937w4ywkq57juxsrhvw8ym5d8qx7sz7zz0zvcypqsgjrqpnw8",
    ),
    (
        64,
        0,
        "bitcoincash",
        "d0f346310d5513d9e01e299978624ba883e6bda8f4c60883c10f28c2967e67ec77ecc7eeeaeafc6da89fad72d11ac961e164678b868aeeec5f2c1da08884175b",
        "bitcoincash:qlg0x333p4238k0qrc5ej7rzfw5g8e4a4r6vvzyrcy8j3s5k0en7calvclhw46hudk5flttj6ydvjc0pv3nchp52amk97tqa5zygg96mtky5sv5w",
    ),
    (
        64,
        2,
        "bitcoincash",
        "d0f346310d5513d9e01e299978624ba883e6bda8f4c60883c10f28c2967e67ec77ecc7eeeaeafc6da89fad72d11ac961e164678b868aeeec5f2c1da08884175b",
        "bitcoincash:zlg0x333p4238k0qrc5ej7rzfw5g8e4a4r6vvzyrcy8j3s5k0en7calvclhw46hudk5flttj6ydvjc0pv3nchp52amk97tqa5zygg96m4zqdd0qv",
    ),
    (
        64,
        1,
        "bchtest",
        "d0f346310d5513d9e01e299978624ba883e6bda8f4c60883c10f28c2967e67ec77ecc7eeeaeafc6da89fad72d11ac961e164678b868aeeec5f2c1da08884175b",
        "bchtest:plg0x333p4238k0qrc5ej7rzfw5g8e4a4r6vvzyrcy8j3s5k0en7calvclhw46hudk5flttj6ydvjc0pv3nchp52amk97tqa5zygg96mc773cwez",
    ),
    (
        64,
        3,
        "bchtest",
        "d0f346310d5513d9e01e299978624ba883e6bda8f4c60883c10f28c2967e67ec77ecc7eeeaeafc6da89fad72d11ac961e164678b868aeeec5f2c1da08884175b",
        "bchtest:rlg0x333p4238k0qrc5ej7rzfw5g8e4a4r6vvzyrcy8j3s5k0en7calvclhw46hudk5flttj6ydvjc0pv3nchp52amk97tqa5zygg96mx26g9ddq",
    ),
    (
        64,
        15,
        "prefix",
        "d0f346310d5513d9e01e299978624ba883e6bda8f4c60883c10f28c2967e67ec77ecc7eeeaeafc6da89fad72d11ac961e164678b868aeeec5f2c1da08884175b",
        "prefix:0lg0x333p4238k0qrc5ej7rzfw5g8e4a4r6vvzyrcy8j3s5k0en7calvclhw46hudk5flttj6ydvjc0pv3nchp52amk97tqa5zygg96ms92w6845",
    ),
];

/// The spec's checksum vectors (payloads that are not addresses, on purpose): the text and
/// its 5-bit values.
const RAW: &[(&str, &[u8])] = &[
    ("prefix:x64nx6hz", &[]),
    ("PREFIX:X64NX6HZ", &[]),
    ("p:gpf8m4h7", &[]),
    (
        "bitcoincash:qpzry9x8gf2tvdw0s3jn54khce6mua7lcw20ayyn",
        &[
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 25, 26, 27, 28, 29, 30, 31,
        ],
    ),
    (
        "bchtest:testnetaddress4d6njnut",
        &[11, 25, 16, 11, 19, 25, 11, 29, 13, 13, 3, 25, 16, 16],
    ),
    (
        "bchreg:555555555555555555555555555555555555555555555udxmlmrz",
        &[
            20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
            20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
            20,
        ],
    ),
];

/// The spec's legacy and CashAddr pairs: (legacy, CashAddr, type, hash160).
const LEGACY: &[(&str, &str, u8, &str)] = &[
    (
        "1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        0,
        "76a04053bda0a88bda5177b86a15c3b29f559873",
    ),
    (
        "1KXrWXciRDZUpQwQmuM1DbwsKDLYAYsVLR",
        "bitcoincash:qr95sy3j9xwd2ap32xkykttr4cvcu7as4y0qverfuy",
        0,
        "cb481232299cd5743151ac4b2d63ae198e7bb0a9",
    ),
    (
        "16w1D5WRVKJuZUsSRzdLp9w3YGcgoxDXb",
        "bitcoincash:qqq3728yw0y47sqn6l2na30mcw6zm78dzqre909m2r",
        0,
        "011f28e473c95f4013d7d53ec5fbc3b42df8ed10",
    ),
    (
        "3CWFddi6m4ndiGyKqzYvsFYagqDLPVMTzC",
        "bitcoincash:ppm2qsznhks23z7629mms6s4cwef74vcwvn0h829pq",
        1,
        "76a04053bda0a88bda5177b86a15c3b29f559873",
    ),
    (
        "3LDsS579y7sruadqu11beEJoTjdFiFCdX4",
        "bitcoincash:pr95sy3j9xwd2ap32xkykttr4cvcu7as4yc93ky28e",
        1,
        "cb481232299cd5743151ac4b2d63ae198e7bb0a9",
    ),
    (
        "31nwvkZwyPdgzjBJZXfDmSWsC4ZLKpYyUw",
        "bitcoincash:pqq3728yw0y47sqn6l2na30mcw6zm78dzq5ucqzc37",
        1,
        "011f28e473c95f4013d7d53ec5fbc3b42df8ed10",
    ),
];

/// BCHN `cashaddr_testvectors_invalid`, decoded with an empty default prefix.
const INVALID: &[&str] = &[
    "prefix:x32nx6hz",
    "prEfix:x64nx6hz",
    "prefix:x64nx6Hz",
    "pref1x:6m8cxv73",
    "prefix:",
    ":u9wsx07j",
    "bchreg:555555555555555555x55555555555555555555555555udxmlmrz",
    "bchreg:555555555555555555555555555555551555555555555udxmlmrz",
    "pre:fix:x32nx6hz",
    "prefixx64nx6hz",
];

/// The type and hash hex an address decodes to; `None`: refused.
type Decoded = Option<(u8, &'static str)>;

/// Hand-made cases around one hash160 (76a04053…): (what, text, network prefix, the
/// type and hash when it decodes).
const AROUND: &[(&str, &str, &str, Decoded)] = &[
    (
        "valid lowercase",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "bitcoincash",
        Some((0, "76a04053bda0a88bda5177b86a15c3b29f559873")),
    ),
    (
        "valid all-uppercase",
        "BITCOINCASH:QPM2QSZNHKS23Z7629MMS6S4CWEF74VCWVY22GDX6A",
        "bitcoincash",
        Some((0, "76a04053bda0a88bda5177b86a15c3b29f559873")),
    ),
    (
        "prefix omitted, default prefix bitcoincash",
        "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "bitcoincash",
        Some((0, "76a04053bda0a88bda5177b86a15c3b29f559873")),
    ),
    (
        "prefix omitted, uppercase",
        "QPM2QSZNHKS23Z7629MMS6S4CWEF74VCWVY22GDX6A",
        "bitcoincash",
        Some((0, "76a04053bda0a88bda5177b86a15c3b29f559873")),
    ),
    (
        "mixed case: upper prefix, lower payload: mixed case",
        "BITCOINCASH:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "bitcoincash",
        None,
    ),
    (
        "mixed case: one upper char in payload: mixed case",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6A",
        "bitcoincash",
        None,
    ),
    (
        "one char substituted (checksum): checksum",
        "bitcoincash:qpm2qsznqks23z7629mms6s4cwef74vcwvy22gdx6a",
        "bitcoincash",
        None,
    ),
    (
        "last checksum char changed: checksum",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6q",
        "bitcoincash",
        None,
    ),
    (
        "valid mainnet string, expected prefix bchtest: prefix mismatch",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "bchtest",
        None,
    ),
    (
        "mainnet payload with bchtest: prefix: checksum",
        "bchtest:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "bchtest",
        None,
    ),
    (
        "mainnet payload, prefix omitted, decoded with default bchtest: checksum",
        "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "bchtest",
        None,
    ),
    (
        "bchtest P2PKH same hash",
        "bchtest:qpm2qsznhks23z7629mms6s4cwef74vcwvqcw003ap",
        "bchtest",
        Some((0, "76a04053bda0a88bda5177b86a15c3b29f559873")),
    ),
    (
        "bchreg P2PKH same hash",
        "bchreg:qpm2qsznhks23z7629mms6s4cwef74vcwv6ycwvz78",
        "bchreg",
        Some((0, "76a04053bda0a88bda5177b86a15c3b29f559873")),
    ),
    (
        "bchtest P2SH same hash",
        "bchtest:ppm2qsznhks23z7629mms6s4cwef74vcwvhanqgjxu",
        "bchtest",
        Some((1, "76a04053bda0a88bda5177b86a15c3b29f559873")),
    ),
    (
        "version reserved bit 0x80 set (valid checksum): reserved bit",
        "bitcoincash:spm2qsznhks23z7629mms6s4cwef74vcwv4glwxl5g",
        "bitcoincash",
        None,
    ),
    (
        "size bits say 20 bytes, 24-byte hash (valid checksum): size mismatch",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvqqqqqqfvlqnp3s",
        "bitcoincash",
        None,
    ),
    (
        "size bits say 24 bytes, 20-byte hash (valid checksum): size mismatch",
        "bitcoincash:q9m2qsznhks23z7629mms6s4cwef74vcwvtn0d2s8a",
        "bitcoincash",
        None,
    ),
    (
        "non-zero padding bits (valid checksum): non-zero padding / excess padding",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwdhfnr59fu",
        "bitcoincash",
        None,
    ),
    (
        "extra 5-bit group of zeros (valid checksum): non-zero padding / excess padding",
        "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvq5xhgekz9",
        "bitcoincash",
        None,
    ),
    (
        "empty payload, checksum only (valid checksum): empty payload",
        "bitcoincash:a5a8yrhz",
        "bitcoincash",
        None,
    ),
    (
        "type 15 with 20-byte hash (decodes; unknown type)",
        "bitcoincash:0pm2qsznhks23z7629mms6s4cwef74vcwvxs40fhwz",
        "bitcoincash",
        Some((15, "76a04053bda0a88bda5177b86a15c3b29f559873")),
    ),
];
#[test]
fn the_spec_and_node_vectors_decode_and_encode() {
    for &(size, type_bits, prefix, hash, text) in VECTORS {
        let addr = decode(text, "").unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(addr.prefix, prefix, "{text}");
        assert_eq!(addr.type_bits, type_bits, "{text}");
        assert_eq!(addr.hash.len(), size, "{text}");
        assert_eq!(hex::encode(&addr.hash), hash, "{text}");
        assert_eq!(
            addr.to_string(),
            text,
            "encoding {prefix} {type_bits} {hash}"
        );
        // Upper case is the same address; the prefix may be left out.
        assert_eq!(decode(&text.to_uppercase(), ""), Ok(addr.clone()));
        let payload = &text[prefix.len() + 1..];
        assert_eq!(decode_for(payload, prefix), Ok(addr));
    }
}

#[test]
fn checksum_vectors() {
    for &(text, values) in RAW {
        let (prefix, _) = text.split_once(':').unwrap_or_else(|| unreachable!());
        let (decoded_prefix, decoded) =
            decode_values(text, "").unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(decoded_prefix, prefix.to_lowercase());
        assert_eq!(decoded, values, "{text}");
        // And with the prefix given by the network instead of written out.
        let payload = &text[prefix.len() + 1..];
        assert_eq!(
            decode_values(payload, prefix).map(|(_, v)| v),
            Ok(values.to_vec())
        );
    }
}

#[test]
fn legacy_pairs_pay_the_same_scripts() {
    for &(legacy, cash, type_bits, hash) in LEGACY {
        let addr = decode_for(cash, "bitcoincash").unwrap_or_else(|e| panic!("{cash}: {e}"));
        assert_eq!(
            (addr.type_bits, hex::encode(&addr.hash).as_str()),
            (type_bits, hash)
        );
        let from_legacy = crate::address::parse(legacy, crate::address::Network::Main)
            .unwrap_or_else(|e| panic!("{legacy}: {e}"));
        assert_eq!(
            addr.script_pubkey(),
            Some(from_legacy.script_pubkey),
            "{cash}"
        );
    }
}

#[test]
fn invalid_vectors_are_refused() {
    for &text in INVALID {
        assert!(decode(text, "").is_err(), "{text} decoded");
    }
    assert_eq!(
        decode("pref1x:6m8cxv73", ""),
        Err(CashAddrError::DigitInPrefix)
    );
    assert_eq!(
        decode(":u9wsx07j", ""),
        Err(CashAddrError::BadCharacter(':'))
    );
    assert_eq!(decode("prefix:x64nx6Hz", ""), Err(CashAddrError::MixedCase));
}

#[test]
fn cases_around_one_address() {
    for &(what, text, prefix, expected) in AROUND {
        let got = decode_for(text, prefix);
        match expected {
            Some((type_bits, hash)) => {
                let addr = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(
                    (addr.type_bits, hex::encode(&addr.hash).as_str()),
                    (type_bits, hash),
                    "{what}"
                );
            }
            None => assert!(got.is_err(), "{what}: {got:?}"),
        }
    }
    let mainnet = "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a";
    assert_eq!(
        decode_for(mainnet, "bchtest"),
        Err(CashAddrError::WrongPrefix {
            expected: "bchtest".into(),
            found: "bitcoincash".into()
        })
    );
    assert_eq!(
        decode_for(
            "bitcoincash:qpm2qsznqks23z7629mms6s4cwef74vcwvy22gdx6a",
            "bitcoincash"
        ),
        Err(CashAddrError::Checksum)
    );
}

#[test]
fn scripts_of_each_kind() {
    let p2pkh = decode_for(
        "bchreg:qpm2qsznhks23z7629mms6s4cwef74vcwv6ycwvz78",
        "bchreg",
    )
    .unwrap();
    assert_eq!(
        hex::encode(p2pkh.script_pubkey().unwrap()),
        "76a91476a04053bda0a88bda5177b86a15c3b29f55987388ac"
    );
    // Token-aware P2PKH pays the same script.
    let token = decode_for(
        "bitcoincash:zpm2qsznhks23z7629mms6s4cwef74vcwvrqekrq9w",
        "bitcoincash",
    )
    .unwrap();
    assert_eq!(
        hex::encode(token.script_pubkey().unwrap()),
        "76a91476a04053bda0a88bda5177b86a15c3b29f55987388ac"
    );
    // P2SH32 (BCHN dstencode_tests): OP_HASH256 <32 bytes> OP_EQUAL.
    let p2sh32 = decode_for(
        "bitcoincash:pwqwzrf7z06m7nn58tkdjyxqfewanlhyrpxysack85xvf3mt0rv02l9dxc5uf",
        "bitcoincash",
    )
    .unwrap();
    assert_eq!(
        hex::encode(p2sh32.script_pubkey().unwrap()),
        "aa2080e10d3e13f5bf4e743aecd910c04e5dd9fee4184c4877163d0cc4c76b78d8f587"
    );
    // A 24-byte P2PKH and type 15 are well-formed CashAddr but no payout script.
    let odd = decode(
        "bitcoincash:q9adhakpwzztepkpwp5z0dq62m6u5v5xtyj7j3h2ws4mr9g0",
        "",
    )
    .unwrap();
    assert_eq!(odd.script_pubkey(), None);
    let unknown = decode("prefix:0r6m7j9njldwwzlg9v7v53unlr4jkmx6ey3qnjwsrf", "").unwrap();
    assert_eq!(unknown.script_pubkey(), None);
}
