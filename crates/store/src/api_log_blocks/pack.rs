//! The few MessagePack encodings a block's writer needs, written straight into the block: integers, strings,
//! fixed-size bytes, nil and array lengths, each in the shortest form, as `rmp` (and so `rmp_serde`, which reads
//! the blocks back) writes them. `rmp`'s encoders go through `io::Write` for each marker and length: ~75
//! instructions a field, about half the cost of encoding a logged call; here a field is a push and a copy. Each is
//! always inlined (left to the compiler, `str` and `uint` stayed calls whose register saves and restores cost
//! ~140 instructions a logged call), and a marker's length or value is an array of known size: as a slice of
//! unknown length, its one or two bytes were copied by a call to `memcpy` (~100 instructions a logged call).

/// An array of `len` elements follows.
#[inline(always)]
pub(super) fn array_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..16 => out.push(0x90 | len as u8),
        16..=0xffff => header(out, 0xdc, (len as u16).to_be_bytes()),
        _ => header(out, 0xdd, u32::try_from(len).expect("an array of at most 2^32 - 1 elements").to_be_bytes()),
    }
}

/// A non-negative integer.
#[inline(always)]
pub(super) fn uint(out: &mut Vec<u8>, value: u64) {
    match value {
        0..128 => out.push(value as u8),
        128..=0xff => header(out, 0xcc, [value as u8]),
        0x100..=0xffff => header(out, 0xcd, (value as u16).to_be_bytes()),
        0x1_0000..=0xffff_ffff => header(out, 0xce, (value as u32).to_be_bytes()),
        _ => header(out, 0xcf, value.to_be_bytes()),
    }
}

/// A signed integer: a non-negative one as [`uint`] writes it.
#[inline(always)]
pub(super) fn int(out: &mut Vec<u8>, value: i64) {
    match value {
        0.. => uint(out, value as u64),
        -32..0 => out.push(value as u8),
        -0x80..-32 => header(out, 0xd0, (value as i8).to_be_bytes()),
        -0x8000..-0x80 => header(out, 0xd1, (value as i16).to_be_bytes()),
        -0x8000_0000..-0x8000 => header(out, 0xd2, (value as i32).to_be_bytes()),
        _ => header(out, 0xd3, value.to_be_bytes()),
    }
}

/// A UTF-8 string.
#[inline(always)]
pub(super) fn str(out: &mut Vec<u8>, text: &str) {
    let len = text.len();
    match len {
        0..32 => out.push(0xa0 | len as u8),
        32..=0xff => header(out, 0xd9, [len as u8]),
        0x100..=0xffff => header(out, 0xda, (len as u16).to_be_bytes()),
        _ => header(out, 0xdb, u32::try_from(len).expect("a string of at most 4 GiB").to_be_bytes()),
    }
    out.extend_from_slice(text.as_bytes());
}

/// Bytes of a length known when compiled (an id, an address): copied inline, with no call to `memcpy`.
#[inline(always)]
pub(super) fn bin_array<const N: usize>(out: &mut Vec<u8>, bytes: &[u8; N]) {
    const { assert!(N <= 0xff, "one length byte") };
    header(out, 0xc4, [N as u8]);
    out.extend_from_slice(bytes);
}

#[inline(always)]
pub(super) fn nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

/// A marker and the big-endian length or value that follows it.
#[inline(always)]
fn header<const N: usize>(out: &mut Vec<u8>, marker: u8, rest: [u8; N]) {
    out.push(marker);
    out.extend_from_slice(&rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_the_one_rmp_writes() {
        let ints = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, i64::MAX];
        let negatives = [-1, -32, -33, -128, -129, -32_768, -32_769, -2_147_483_648, -2_147_483_649, i64::MIN];
        for value in ints.into_iter().chain(negatives) {
            let mut out = Vec::new();
            int(&mut out, value);
            assert_eq!(out, rmp_serde::to_vec(&value).unwrap(), "{value}");
            if let Ok(unsigned) = u64::try_from(value) {
                let mut out = Vec::new();
                uint(&mut out, unsigned);
                assert_eq!(out, rmp_serde::to_vec(&unsigned).unwrap(), "{unsigned}");
            }
        }
        for len in [0, 15, 16, 31, 32, 255, 256, 65_535, 65_536] {
            let text = "x".repeat(len);
            let mut out = Vec::new();
            str(&mut out, &text);
            assert_eq!(out, rmp_serde::to_vec(&text).unwrap(), "a string of {len}");
            let elements = vec![(); len];
            let mut out = Vec::new();
            array_len(&mut out, len);
            assert_eq!(out, rmp_serde::to_vec(&elements).unwrap()[..out.len()], "an array of {len}");
        }
        let mut out = Vec::new();
        bin_array(&mut out, &[7u8; 16]);
        assert_eq!(out, rmp_serde::to_vec(&serde_bytes::Bytes::new(&[7u8; 16])).unwrap(), "an id of 16 bytes");
        let mut out = Vec::new();
        bin_array(&mut out, &[10u8, 0, 0, 1]);
        assert_eq!(out, rmp_serde::to_vec(&serde_bytes::Bytes::new(&[10u8, 0, 0, 1])).unwrap(), "an address");
        let mut out = Vec::new();
        nil(&mut out);
        assert_eq!(out, rmp_serde::to_vec(&None::<u8>).unwrap());
    }
}
