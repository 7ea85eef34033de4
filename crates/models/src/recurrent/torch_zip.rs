//! The zip container of `torch.save`, made readable where the reader under burn-store misreads it.
//!
//! `torch.save` writes the ZIP64 end records (the ZIP64 end of central directory and its
//! locator, 76 bytes) between the central directory and the classic end record, even where no
//! field needs them. zip 9.8.2, the reader under burn-store's PyTorch reader, then finds nothing
//! in the classic record that calls for ZIP64. It takes `end record - directory size` as the
//! directory's start, which reads the 76 bytes as data prepended to the archive. That guess is
//! wrong but only used if a central directory entry begins exactly there, that is, when the first
//! entry is 76 bytes long. Its name is `ARCHIVE/data.pkl`, where torch names `ARCHIVE` after the
//! file's stem, so this happens for a 21-character stem such as `lstm_l2_bi_h0.weights.pt`.
//! Every offset is then 76 bytes off and the file is refused ("Invalid Central Directory
//! header").
//!
//! [`without_redundant_zip64`] gives the archive without those records when the classic record
//! alone describes it. The reader then finds the directory where the classic record puts it.

/// Signature of the classic end of central directory record.
const EOCD: &[u8; 4] = b"PK\x05\x06";
/// Signature of the ZIP64 end of central directory record.
const EOCD64: &[u8; 4] = b"PK\x06\x06";
/// Signature of the ZIP64 end of central directory locator.
const LOCATOR64: &[u8; 4] = b"PK\x06\x07";

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// `bytes` without its ZIP64 end records, if the archive has them although its classic end
/// record describes it completely (no saturated field, no comment, the central directory ending
/// where the ZIP64 record begins); `None` for any other file.
pub(crate) fn without_redundant_zip64(bytes: &[u8]) -> Option<Vec<u8>> {
    // The classic record is the last 22 bytes (torch writes no archive comment).
    let eocd = bytes.len().checked_sub(22)?;
    if &bytes[eocd..eocd + 4] != EOCD || u16_at(bytes, eocd + 20)? != 0 {
        return None;
    }
    let entries = u16_at(bytes, eocd + 10)?;
    let (cd_size, cd_offset) = (u32_at(bytes, eocd + 12)?, u32_at(bytes, eocd + 16)?);
    if entries == u16::MAX || cd_size == u32::MAX || cd_offset == u32::MAX {
        return None;
    }
    let locator = eocd.checked_sub(20)?;
    if &bytes[locator..locator + 4] != LOCATOR64 {
        return None;
    }
    let eocd64 = usize::try_from(u64_at(bytes, locator + 8)?).ok()?;
    let directory_end = (cd_offset as usize).checked_add(cd_size as usize)?;
    if eocd64 != directory_end || eocd64 >= locator || bytes.get(eocd64..eocd64 + 4)? != EOCD64 {
        return None;
    }
    let mut fixed = Vec::with_capacity(bytes.len() - (eocd - eocd64));
    fixed.extend_from_slice(&bytes[..eocd64]);
    fixed.extend_from_slice(&bytes[eocd..]);
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored archive's tail as torch writes it: directory, ZIP64 record, locator, classic
    /// record.
    fn tail(cd_offset: u32, cd: &[u8], zip64: bool) -> Vec<u8> {
        let mut bytes = vec![0u8; cd_offset as usize];
        bytes.extend_from_slice(cd);
        let eocd64 = bytes.len() as u64;
        if zip64 {
            bytes.extend_from_slice(EOCD64);
            bytes.extend_from_slice(&44u64.to_le_bytes());
            bytes.extend_from_slice(&[0u8; 44]);
            bytes.extend_from_slice(LOCATOR64);
            bytes.extend_from_slice(&0u32.to_le_bytes());
            bytes.extend_from_slice(&eocd64.to_le_bytes());
            bytes.extend_from_slice(&1u32.to_le_bytes());
        }
        bytes.extend_from_slice(EOCD);
        bytes.extend_from_slice(&[0u8; 4]);
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&cd_offset.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes
    }

    #[test]
    fn drops_only_zip64_records_the_classic_record_makes_redundant() {
        let cd = b"PK\x01\x02central directory entry";
        let with = tail(64, cd, true);
        let fixed = without_redundant_zip64(&with).expect("redundant records");
        assert_eq!(fixed, tail(64, cd, false));
        // Nothing to drop, or records that are needed, or not an archive: left alone.
        assert!(without_redundant_zip64(&fixed).is_none());
        let mut saturated = with.clone();
        let at = saturated.len() - 6;
        saturated[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(without_redundant_zip64(&saturated).is_none());
        assert!(without_redundant_zip64(b"not a zip file at all, just some text").is_none());
    }
}
