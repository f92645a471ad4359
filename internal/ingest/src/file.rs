//! MPEG-TS from a local file (`file:///abs/path.ts` or `/abs/path.ts`),
//! played in real time.
//!
//! - Paced by PCR (fallback DTS/PTS) with [`crate::pace::TsPipe`]; clock jumps
//!   (> 1 s, or backwards) restart the pacing.
//! - `?loop=true`: at the end of the file it starts again; PCR/PTS/DTS are
//!   shifted so the timeline continues (next pass starts one frame after the
//!   last frame of the previous one) and continuity counters carry on per
//!   PID, so the hub sees one uninterrupted stream (no discontinuity).
//! - A file that ends mid-packet ends cleanly: the partial packet is dropped.
//! - Missing file → `not_found`; a file that is not MPEG-TS → `protocol`
//!   after at most [`crate::pace::MAX_UNSYNCED`] bytes without sync.

use std::path::PathBuf;

use tokio::io::AsyncReadExt;

use crate::Session;
use crate::emit::TsEmitter;
use crate::error::IngestError;
use crate::pace::TsPipe;

/// One session of a file input.
pub async fn run(s: &Session<'_>, out: &mut TsEmitter) -> Result<(), IngestError> {
    let (path, looping) = parse(s.url)?;
    let mut pipe = TsPipe::new(s.stats, true, looping);
    loop {
        let mut file = open(&path).await?;
        loop {
            let n = file
                .read_buf(pipe.buffer())
                .await
                .map_err(|e| with_path(e, &path))?;
            if n == 0 {
                break;
            }
            pipe.drain(out).await?;
        }
        pipe.end_pass(out).await?;
        if !looping {
            return Ok(());
        }
        pipe.next_pass()?;
    }
}

async fn open(path: &PathBuf) -> Result<tokio::fs::File, IngestError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| with_path(e, path))?;
    let meta = file.metadata().await.map_err(|e| with_path(e, path))?;
    if meta.is_dir() {
        return Err(IngestError::config(format!(
            "{}: is a directory",
            path.display()
        )));
    }
    Ok(file)
}

fn with_path(e: std::io::Error, path: &std::path::Path) -> IngestError {
    let e = IngestError::from(e);
    IngestError::new(e.kind, format!("{}: {}", path.display(), e.message))
}

/// The file path and the `loop` option of a file input URL.
pub(crate) fn parse(raw: &str) -> Result<(PathBuf, bool), IngestError> {
    if raw.starts_with('/') {
        let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
        return Ok((PathBuf::from(path), loop_option(query)?));
    }
    let url = url::Url::parse(raw).map_err(|e| IngestError::config(format!("invalid url: {e}")))?;
    let path = url
        .to_file_path()
        .map_err(|()| IngestError::config("file url must be file:///absolute/path"))?;
    Ok((path, loop_option(url.query().unwrap_or(""))?))
}

/// `loop=true|false` from a query string (absent = false).
pub(crate) fn loop_option(query: &str) -> Result<bool, IngestError> {
    let mut looping = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "loop" {
            looping = match v.as_ref() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(IngestError::config(format!(
                        "loop must be true or false, not {other:?}"
                    )));
                }
            };
        }
    }
    Ok(looping)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_loop_option() {
        let ok = |s: &str| parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("/a/b.ts"), (PathBuf::from("/a/b.ts"), false));
        assert_eq!(ok("/a/b.ts?loop=true"), (PathBuf::from("/a/b.ts"), true));
        assert_eq!(
            ok("file:///a/b%20c.ts?loop=true"),
            (PathBuf::from("/a/b c.ts"), true)
        );
        assert_eq!(
            ok("file://localhost/a.ts?loop=false"),
            (PathBuf::from("/a.ts"), false)
        );
        assert!(parse("/a.ts?loop=yes").is_err());
    }
}
