//! Bit-level reading of RBSP payloads: fixed-width fields, Exp-Golomb codes,
//! and emulation-prevention byte removal/insertion.

use crate::error::CodecError;

/// Remove emulation-prevention bytes (`00 00 03` → `00 00`) from a NAL unit,
/// yielding its raw byte sequence payload (RBSP).
pub fn remove_emulation_prevention(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            // Drop the emulation-prevention byte; the zero run restarts.
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

/// Insert emulation-prevention bytes so that an RBSP can be carried as a NAL
/// unit payload (no `00 00 0x` with x <= 3 remains).
pub fn add_emulation_prevention(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 1);
    let mut zeros = 0usize;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

/// MSB-first bit reader over an RBSP (emulation prevention already removed).
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bits consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bits not read yet.
    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Read one bit.
    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self.data.get(self.pos / 8).ok_or(CodecError::Truncated)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Read a flag (alias of [`BitReader::read_bit`], matching spec `u(1)` fields).
    pub fn read_flag(&mut self) -> Result<bool, CodecError> {
        self.read_bit()
    }

    /// Read `n` bits (0..=64) as an unsigned integer.
    pub fn read_bits(&mut self, n: u32) -> Result<u64, CodecError> {
        if n > 64 {
            return Err(CodecError::Invalid("bit field wider than 64 bits"));
        }
        if (n as usize) > self.bits_left() {
            return Err(CodecError::Truncated);
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.read_bit()?);
        }
        Ok(v)
    }

    /// Read up to 8 bits.
    pub fn read_u8(&mut self, n: u32) -> Result<u8, CodecError> {
        Ok(self.read_bits(n.min(8))? as u8)
    }

    /// Read up to 16 bits.
    pub fn read_u16(&mut self, n: u32) -> Result<u16, CodecError> {
        Ok(self.read_bits(n.min(16))? as u16)
    }

    /// Read up to 32 bits.
    pub fn read_u32(&mut self, n: u32) -> Result<u32, CodecError> {
        Ok(self.read_bits(n.min(32))? as u32)
    }

    /// Skip `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        if n > self.bits_left() {
            return Err(CodecError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// Read an unsigned Exp-Golomb code `ue(v)`; values above `u32::MAX - 1`
    /// are rejected.
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let mut leading = 0u32;
        while !self.read_bit()? {
            leading += 1;
            if leading > 31 {
                return Err(CodecError::Invalid("Exp-Golomb code longer than 32 bits"));
            }
        }
        let suffix = self.read_bits(leading)?;
        let value = (1u64 << leading) - 1 + suffix;
        u32::try_from(value).map_err(|_| CodecError::Invalid("Exp-Golomb value overflows"))
    }

    /// Read an unsigned Exp-Golomb code and reject values above `max`.
    pub fn read_ue_max(&mut self, max: u32, what: &'static str) -> Result<u32, CodecError> {
        let v = self.read_ue()?;
        if v > max {
            return Err(CodecError::OutOfRange(what));
        }
        Ok(v)
    }

    /// Read a signed Exp-Golomb code `se(v)`.
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| CodecError::Invalid("Exp-Golomb value overflows"))
    }
}

/// MSB-first bit writer, used to build synthetic parameter sets (tests, fuzzing).
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    out: Vec<u8>,
    bits: u32,
    cur: u8,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn write_bit(&mut self, bit: bool) {
        self.cur = (self.cur << 1) | u8::from(bit);
        self.bits += 1;
        if self.bits == 8 {
            self.out.push(self.cur);
            self.cur = 0;
            self.bits = 0;
        }
    }

    /// Write the low `n` bits of `value`, MSB first (`n` <= 64).
    pub fn write_bits(&mut self, value: u64, n: u32) {
        for i in (0..n.min(64)).rev() {
            self.write_bit((value >> i) & 1 == 1);
        }
    }

    pub fn write_ue(&mut self, value: u32) {
        let v = u64::from(value) + 1;
        let len = 64 - v.leading_zeros();
        self.write_bits(0, len - 1);
        self.write_bits(v, len);
    }

    pub fn write_se(&mut self, value: i32) {
        let v = i64::from(value);
        let k = if v > 0 { 2 * v - 1 } else { -2 * v };
        self.write_ue(u32::try_from(k).unwrap_or(u32::MAX));
    }

    /// Append the RBSP trailing bits (a one, then zeros to the byte boundary)
    /// and return the bytes.
    pub fn finish_rbsp(mut self) -> Vec<u8> {
        self.write_bit(true);
        while self.bits != 0 {
            self.write_bit(false);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention_round_trip() {
        let rbsp = [0u8, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0];
        let nal = add_emulation_prevention(&rbsp);
        assert_eq!(
            nal,
            [
                0, 0, 3, 0, 0, 3, 0, 1, 0, 0, 3, 2, 0, 0, 3, 3, 0, 0, 4, 0, 0
            ]
        );
        assert_eq!(remove_emulation_prevention(&nal), rbsp);
    }

    #[test]
    fn exp_golomb_round_trip() {
        let mut w = BitWriter::new();
        for v in [0u32, 1, 2, 3, 7, 8, 255, 65_535, u32::MAX - 1] {
            w.write_ue(v);
        }
        for v in [0i32, 1, -1, 2, -2, 1000, -1000] {
            w.write_se(v);
        }
        w.write_bits(0b101, 3);
        let data = w.finish_rbsp();
        let mut r = BitReader::new(&data);
        for v in [0u32, 1, 2, 3, 7, 8, 255, 65_535, u32::MAX - 1] {
            assert_eq!(r.read_ue(), Ok(v));
        }
        for v in [0i32, 1, -1, 2, -2, 1000, -1000] {
            assert_eq!(r.read_se(), Ok(v));
        }
        assert_eq!(r.read_bits(3), Ok(0b101));
        assert_eq!(r.read_bit(), Ok(true));
    }

    #[test]
    fn truncated_and_overlong_codes_are_errors() {
        let mut r = BitReader::new(&[0, 0, 0, 0, 0]);
        assert!(r.read_ue().is_err());
        let mut r = BitReader::new(&[0x00]);
        assert_eq!(r.read_ue(), Err(CodecError::Truncated));
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(9), Err(CodecError::Truncated));
        assert_eq!(r.read_bits(8), Ok(0xff));
        assert_eq!(r.read_bit(), Err(CodecError::Truncated));
    }
}
