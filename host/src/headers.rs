//! Reading a consumed record's headers without trusting them: a client may
//! send header names that are not UTF-8, on which rdkafka's own accessor
//! panics. The runner, the gateway's views and the load checker read
//! headers only through here.

use std::ffi::CStr;

use rdkafka::Message as _;
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Headers};

/// All headers of a consumed record, names decoded lossily; safe on any bytes.
pub fn record_headers(message: &BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    message.headers().map(read_headers).unwrap_or_default()
}

/// All headers of a record. rdkafka's `Headers::get` unwraps the name as
/// UTF-8 and panics on anything else, so the names are read through
/// librdkafka directly and decoded lossily.
fn read_headers(headers: &BorrowedHeaders) -> Vec<(String, Vec<u8>)> {
    // `BorrowedHeaders` is a view of librdkafka's `rd_kafka_headers_t`: rdkafka
    // hands out a reference whose address is the native pointer.
    let native = std::ptr::from_ref(headers).cast::<rdkafka::bindings::rd_kafka_headers_t>();
    let mut out = Vec::with_capacity(headers.count());
    for idx in 0..headers.count() {
        let mut name = std::ptr::null();
        let mut value = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `native` is valid while `headers` is borrowed; librdkafka
        // returns pointers into the record, which outlives this loop, and a
        // NUL-terminated name.
        let err = unsafe { rdkafka::bindings::rd_kafka_header_get_all(native, idx, &mut name, &mut value, &mut size) };
        if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            continue;
        }
        // SAFETY: as above.
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
        let value = if value.is_null() {
            Vec::new()
        } else {
            // SAFETY: librdkafka guarantees `size` readable bytes at `value`.
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }.to_vec()
        };
        out.push((name, value));
    }
    out
}
