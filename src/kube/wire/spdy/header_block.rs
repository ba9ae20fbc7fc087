//! Name/value header blocks: the SPDY/3 zlib dictionary, one direction's compression context
//! (inflate or deflate, one continuous zlib stream per direction), and the block's wire format
//! (a pair count, then length-prefixed names and values), validated both ways.

use bytes::BufMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::collections::HashSet;

use super::{be32, HeaderBlockError, Headers, MAX_FRAME_PAYLOAD, MAX_HEADER_BLOCK};

/// Adler-32 of [`SPDY3_DICTIONARY`]: the DICTID a SPDY/3 zlib stream names.
pub const SPDY3_DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// The zlib dictionary of SPDY/3 header compression (draft 3 §2.6.10.1; same
/// bytes as spdystream's `spdy/dictionary.go`).
pub const SPDY3_DICTIONARY: &[u8; 1423] = b"\
    \0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete\
    \0\0\0\x05trace\0\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding\
    \0\0\0\x0faccept-language\0\0\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow\
    \0\0\0\x0dauthorization\0\0\0\x0dcache-control\0\0\0\x0aconnection\0\0\0\x0ccontent-base\
    \0\0\0\x10content-encoding\0\0\0\x10content-language\0\0\0\x0econtent-length\
    \0\0\0\x10content-location\0\0\0\x0bcontent-md5\0\0\0\x0dcontent-range\
    \0\0\0\x0ccontent-type\0\0\0\x04date\0\0\0\x04etag\0\0\0\x06expect\0\0\0\x07expires\
    \0\0\0\x04from\0\0\0\x04host\0\0\0\x08if-match\0\0\0\x11if-modified-since\
    \0\0\0\x0dif-none-match\0\0\0\x08if-range\0\0\0\x13if-unmodified-since\
    \0\0\0\x0dlast-modified\0\0\0\x08location\0\0\0\x0cmax-forwards\0\0\0\x06pragma\
    \0\0\0\x12proxy-authenticate\0\0\0\x13proxy-authorization\0\0\0\x05range\
    \0\0\0\x07referer\0\0\0\x0bretry-after\0\0\0\x06server\0\0\0\x02te\0\0\0\x07trailer\
    \0\0\0\x11transfer-encoding\0\0\0\x07upgrade\0\0\0\x0auser-agent\0\0\0\x04vary\
    \0\0\0\x03via\0\0\0\x07warning\0\0\0\x10www-authenticate\0\0\0\x06method\0\0\0\x03get\
    \0\0\0\x06status\0\0\0\x06200 OK\0\0\0\x07version\0\0\0\x08HTTP/1.1\0\0\0\x03url\
    \0\0\0\x06public\0\0\0\x0aset-cookie\0\0\0\x0akeep-alive\0\0\0\x06origin\
    100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505\
    203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request\
    401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented\
    503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 \
    Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,\
    application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=\
    gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

type HbResult<T> = Result<T, HeaderBlockError>;

fn zlib_err(msg: &str) -> HeaderBlockError {
    HeaderBlockError::Zlib(msg.to_owned())
}

fn check_pair(name: &[u8], value: &[u8]) -> HbResult<()> {
    if name.is_empty() {
        return Err(HeaderBlockError::ZeroLengthName);
    }
    if name.iter().any(|&b| b == 0 || !b.is_ascii()) {
        return Err(HeaderBlockError::InvalidName);
    }
    let name = String::from_utf8_lossy(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(HeaderBlockError::UppercaseName(name.into_owned()));
    }
    let bad_nul = value.first() == Some(&0)
        || value.last() == Some(&0)
        || value.windows(2).any(|w| w == [0, 0]);
    if bad_nul || std::str::from_utf8(value).is_err() {
        return Err(HeaderBlockError::InvalidValue(name.into_owned()));
    }
    Ok(())
}

/// Decodes an inflated block: the pairs, each name once, nothing after them.
pub(super) fn parse_pairs(raw: &[u8]) -> HbResult<Headers> {
    let mut r = raw;
    let count = take_u32(&mut r)?;
    if usize::try_from(count).map_or(true, |c| c > r.len() / 8) {
        return Err(HeaderBlockError::TooManyPairs(count));
    }
    let mut pairs = Vec::with_capacity(count as usize);
    let mut seen = HashSet::with_capacity(count as usize);
    for _ in 0..count {
        let (name, value) = (take_bytes(&mut r)?, take_bytes(&mut r)?);
        check_pair(name, value)?;
        // check_pair guarantees ASCII names and UTF-8 values.
        let name = String::from_utf8_lossy(name).into_owned();
        let value = String::from_utf8_lossy(value).into_owned();
        if !seen.insert(name.clone()) {
            return Err(HeaderBlockError::DuplicateName(name));
        }
        pairs.push((name, value));
    }
    if !r.is_empty() {
        return Err(HeaderBlockError::TrailingData(r.len()));
    }
    Ok(Headers(pairs))
}

fn take_u32(r: &mut &[u8]) -> HbResult<u32> {
    let v = be32(r, 0).ok_or(HeaderBlockError::Truncated)?;
    *r = r.get(4..).unwrap_or_default();
    Ok(v)
}

fn take_bytes<'a>(r: &mut &'a [u8]) -> HbResult<&'a [u8]> {
    let len = usize::try_from(take_u32(r)?).map_err(|_| HeaderBlockError::Truncated)?;
    if len > r.len() {
        return Err(HeaderBlockError::Truncated);
    }
    let (head, tail) = r.split_at(len);
    *r = tail;
    Ok(head)
}

/// Validates and serialises `headers` into an uncompressed block, refusing what
/// [`parse_pairs`] would refuse and blocks over [`MAX_HEADER_BLOCK`].
pub(super) fn serialize_pairs(headers: &Headers) -> HbResult<Vec<u8>> {
    let mut raw = Vec::new();
    let mut seen = HashSet::new();
    raw.put_u32(u32::try_from(headers.len()).map_err(|_| HeaderBlockError::TooLarge)?);
    for (name, value) in headers.iter() {
        check_pair(name.as_bytes(), value.as_bytes())?;
        if !seen.insert(name) {
            return Err(HeaderBlockError::DuplicateName(name.to_owned()));
        }
        if raw.len() + 8 + name.len() + value.len() > MAX_HEADER_BLOCK {
            return Err(HeaderBlockError::TooLarge);
        }
        raw.put_u32(name.len() as u32); // < MAX_HEADER_BLOCK: checked above
        raw.put_slice(name.as_bytes());
        raw.put_u32(value.len() as u32);
        raw.put_slice(value.as_bytes());
    }
    Ok(raw)
}

/// The inflate side of one direction's zlib stream, shared by all header blocks it carries
/// (SPDY/3 header compression is one continuous zlib stream per direction, primed with
/// [`SPDY3_DICTIONARY`]).
#[derive(Debug)]
pub(super) struct InflateContext {
    inflate: Decompress,
    dictionary_loaded: bool,
}

impl InflateContext {
    pub(super) fn new() -> Self {
        InflateContext {
            inflate: Decompress::new(true),
            dictionary_loaded: false,
        }
    }

    /// Inflates one block with the shared context, holding at most
    /// MAX_HEADER_BLOCK bytes of output.
    pub(super) fn inflate_block(&mut self, mut input: &[u8]) -> HbResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let res = self
                .inflate
                .decompress(input, &mut chunk, FlushDecompress::Sync);
            let consumed = usize::try_from(self.inflate.total_in() - in0).unwrap_or(usize::MAX);
            let produced = usize::try_from(self.inflate.total_out() - out0).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            let new = chunk
                .get(..produced)
                .ok_or_else(|| zlib_err("output overrun"))?;
            if out.len() + new.len() > MAX_HEADER_BLOCK {
                return Err(HeaderBlockError::TooLarge);
            }
            out.extend_from_slice(new);
            match res.map_err(|e| (e.needs_dictionary(), e.to_string())) {
                Ok(Status::StreamEnd) => return Err(HeaderBlockError::StreamEnded),
                Ok(_) => {}
                Err((Some(SPDY3_DICTIONARY_ID), _)) if !self.dictionary_loaded => {
                    let loaded = self.inflate.set_dictionary(SPDY3_DICTIONARY);
                    loaded.map_err(|e| zlib_err(&e.to_string()))?;
                    self.dictionary_loaded = true;
                    continue;
                }
                Err((Some(id), _)) => return Err(HeaderBlockError::UnknownDictionary(id)),
                Err((None, msg)) => return Err(zlib_err(&msg)),
            }
            if input.is_empty() && produced < chunk.len() {
                break;
            }
            if consumed == 0 && produced == 0 {
                return Err(zlib_err("no progress"));
            }
        }
        if !self.dictionary_loaded {
            return Err(HeaderBlockError::MissingDictionary);
        }
        Ok(out)
    }
}

/// The deflate side of one direction's zlib stream (primed with the SPDY/3 dictionary), shared
/// by all header blocks it sends; each block ends with a zlib sync flush, as SPDY/3 requires.
#[derive(Debug)]
pub(super) struct DeflateContext {
    deflate: Compress,
    dictionary_set: bool,
}

impl DeflateContext {
    pub(super) fn new() -> Self {
        let deflate = Compress::new(Compression::default(), true);
        DeflateContext {
            deflate,
            dictionary_set: false,
        }
    }

    pub(super) fn deflate_block(&mut self, mut input: &[u8]) -> HbResult<Vec<u8>> {
        if !self.dictionary_set {
            let set = self.deflate.set_dictionary(SPDY3_DICTIONARY);
            set.map_err(|e| zlib_err(&e.to_string()))?;
            self.dictionary_set = true;
        }
        let mut out = Vec::new();
        loop {
            out.reserve(input.len() / 2 + 64);
            let in0 = self.deflate.total_in();
            let res = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync);
            res.map_err(|e| zlib_err(&e.to_string()))?;
            let consumed = usize::try_from(self.deflate.total_in() - in0).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() > MAX_FRAME_PAYLOAD {
                return Err(HeaderBlockError::TooLarge);
            }
        }
    }
}
