//! PROXY protocol v1 and v2 headers from arbitrary bytes, read from a stream as the pool
//! reads them: no panic, and never a byte read past the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pool::stratum::proxy_protocol::read_header;

fuzz_target!(|data: &[u8]| {
    let runtime = tokio_runtime();
    let mut cursor = std::io::Cursor::new(data);
    let got = runtime.block_on(read_header(&mut cursor));
    let used = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
    if got.is_ok() {
        // The header ended at a CRLF (v1) or at its announced length (v2).
        let header = &data[..used];
        let v1 = header.starts_with(b"PROXY") && header.ends_with(b"\r\n");
        let v2 = header.len() >= 16
            && header.len() == 16 + usize::from(u16::from_be_bytes([header[14], header[15]]));
        assert!(v1 || v2, "consumed {used} bytes that are not one header");
    }
});

fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}
