//! The per-connection request/reply log.
//!
//! **Input format (the log-channel contract).** The primary sends each
//! complete HTTP response, wire bytes with headers, together with the
//! *offset in the server's byte stream* where it starts: offset 0 is the
//! first data byte, server sequence number ISN+1. Offsets are 64-bit, so
//! they never wrap; the backup maps them to sequence numbers with the server
//! ISN it learned from the client's ACK. Entries must follow each other
//! without gap or overlap (an exact re-send of an entry is accepted as a
//! duplicate). This lets the backup compare the client's cumulative ACK
//! with reply positions, so it resends exactly the unacknowledged bytes.
//!
//! **What is kept.** Complete requests (client stream offsets) are kept
//! until a complete final response for them has been logged; the log tells
//! which client stream offset every answered request ends at
//! ([`answered_upto`](ReplyLog::answered_upto)), which is where the rebuilt
//! socket's receive queue starts. Logged replies are kept until the client's
//! cumulative ACK covers them *entirely* (garbage collection in
//! [`ack`](ReplyLog::ack)); a partly acknowledged reply is kept whole and
//! only its unacknowledged suffix is handed out.
//!
//! Replies are matched to requests by framing the logged bytes with a
//! [`ResponseFramer`]: every final (non-1xx) response answers the oldest
//! unanswered request. A log entry must end on a response boundary, except
//! that a response whose body runs until close is ended by its entry.

use crate::http::{HttpError, ResponseFramer};
use std::collections::VecDeque;

/// A complete request awaiting its reply, in client stream offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRecord {
    /// Offset of its first byte.
    pub start: u64,
    /// Offset one past its last byte.
    pub end: u64,
    /// HEAD request (its response has no body).
    pub is_head: bool,
}

/// One logged reply, kept until the client acknowledges all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedReply {
    /// Server stream offset of its first byte.
    pub start: u64,
    /// Its wire bytes.
    pub bytes: Vec<u8>,
}

impl LoggedReply {
    /// Server stream offset one past its last byte.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// Why a reply could not be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyLogError {
    /// The entry does not start where the previous one ended.
    #[error("reply at server offset {got} but log ends at {expected}")]
    NotContiguous {
        /// Where the next entry must start.
        expected: u64,
        /// Where it started.
        got: u64,
    },
    /// A re-sent entry differs from what was logged at that position.
    #[error("reply at server offset {0} conflicts with logged bytes")]
    Conflict(u64),
    /// Logging it would exceed the byte bound (the primary must wait: its
    /// write is held back until the client acknowledges older replies).
    #[error("reply log full ({held} + {len} > {max} bytes)")]
    Full {
        /// Bytes held now.
        held: usize,
        /// Length of the refused entry.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The connection is no longer recorded (see `conn::Unprotected`).
    #[error("connection is no longer recorded")]
    NotRecorded,
    /// The logged bytes are not HTTP/1.1 responses.
    #[error("reply bytes do not frame: {0}")]
    Framing(#[from] HttpError),
}

/// What logging one entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOutcome {
    /// The entry was an exact re-send of logged bytes; nothing changed.
    pub duplicate: bool,
    /// Requests this entry completed the answer to.
    pub answered: usize,
}

/// The request/reply log of one connection (see the module docs).
#[derive(Debug, Clone)]
pub struct ReplyLog {
    requests: VecDeque<RequestRecord>,
    replies: VecDeque<LoggedReply>,
    log_end: u64,
    acked: u64,
    answered_upto: u64,
    answers_ahead: usize,
    held: usize,
    max_bytes: usize,
    framer: ResponseFramer,
}

impl ReplyLog {
    /// An empty log holding at most `max_bytes` of reply bytes.
    pub fn new(max_bytes: usize) -> ReplyLog {
        ReplyLog {
            requests: VecDeque::new(),
            replies: VecDeque::new(),
            log_end: 0,
            acked: 0,
            answered_upto: 0,
            answers_ahead: 0,
            held: 0,
            max_bytes,
            framer: ResponseFramer::new(),
        }
    }

    /// A complete request was framed in the client stream. Returns true if
    /// it was already answered (its reply was logged before it completed).
    pub fn push_request(&mut self, r: RequestRecord) -> bool {
        if self.answers_ahead > 0 {
            // Its response was already framed (as a non-HEAD answer).
            self.answers_ahead -= 1;
            self.answered_upto = self.answered_upto.max(r.end);
            true
        } else {
            self.framer.expect_request(r.is_head);
            self.requests.push_back(r);
            false
        }
    }

    /// Log one reply entry starting at server stream offset `start`.
    pub fn log_reply(&mut self, start: u64, bytes: &[u8]) -> Result<LogOutcome, ReplyLogError> {
        // An entry that would end past 2^64 cannot follow the log (whose end
        // is a sum of entry lengths): refuse it instead of overflowing.
        let Some(end) = start.checked_add(bytes.len() as u64) else {
            return Err(ReplyLogError::NotContiguous {
                expected: self.log_end,
                got: start,
            });
        };
        if start < self.log_end && end <= self.log_end {
            return self.check_duplicate(start, bytes);
        }
        if start != self.log_end {
            return Err(ReplyLogError::NotContiguous {
                expected: self.log_end,
                got: start,
            });
        }
        if bytes.is_empty() {
            return Ok(LogOutcome {
                duplicate: true,
                answered: 0,
            });
        }
        if self.held + bytes.len() > self.max_bytes {
            return Err(ReplyLogError::Full {
                held: self.held,
                len: bytes.len(),
                max: self.max_bytes,
            });
        }
        let mut framed = self.framer.push(bytes)?;
        framed.extend(self.framer.end_of_stream());
        let mut answered = 0;
        for _ in framed.iter().filter(|f| f.is_final) {
            answered += 1;
            match self.requests.pop_front() {
                Some(r) => self.answered_upto = r.end,
                None => self.answers_ahead += 1,
            }
        }
        self.held += bytes.len();
        self.log_end = end;
        self.replies.push_back(LoggedReply {
            start,
            bytes: bytes.to_vec(),
        });
        self.gc();
        Ok(LogOutcome {
            duplicate: false,
            answered,
        })
    }

    fn check_duplicate(&self, start: u64, bytes: &[u8]) -> Result<LogOutcome, ReplyLogError> {
        // Compare with whatever part is still held; GC'd parts were acked.
        for r in &self.replies {
            let lo = start.max(r.start);
            let hi = (start + bytes.len() as u64).min(r.end());
            if lo < hi {
                let a = &r.bytes[(lo - r.start) as usize..(hi - r.start) as usize];
                let b = &bytes[(lo - start) as usize..(hi - start) as usize];
                if a != b {
                    return Err(ReplyLogError::Conflict(start));
                }
            }
        }
        Ok(LogOutcome {
            duplicate: true,
            answered: 0,
        })
    }

    /// The client's cumulative ACK reached server stream offset `acked`:
    /// drop replies it covers entirely.
    pub fn ack(&mut self, acked: u64) {
        if acked > self.acked {
            self.acked = acked;
            self.gc();
        }
    }

    fn gc(&mut self) {
        while let Some(r) = self.replies.front() {
            if r.end() > self.acked {
                break;
            }
            self.held -= r.bytes.len();
            self.replies.pop_front();
        }
    }

    /// Logged bytes from server stream offset `from` to the end of the log;
    /// `None` if `from` is beyond the log end or was already collected.
    pub fn bytes_from(&self, from: u64) -> Option<Vec<u8>> {
        if from > self.log_end {
            return None;
        }
        let mut out = Vec::with_capacity((self.log_end - from) as usize);
        let mut pos = from;
        for r in &self.replies {
            if r.end() <= pos {
                continue;
            }
            if r.start > pos {
                return None;
            }
            out.extend_from_slice(&r.bytes[(pos - r.start) as usize..]);
            pos = r.end();
        }
        (pos == self.log_end).then_some(out)
    }

    /// Server stream offset one past the last logged byte.
    pub fn log_end(&self) -> u64 {
        self.log_end
    }
    /// Highest server stream offset the client acknowledged, as told by
    /// [`ack`](Self::ack).
    pub fn acked(&self) -> u64 {
        self.acked
    }
    /// Client stream offset where the first unanswered request starts (the
    /// end of the last answered one).
    pub fn answered_upto(&self) -> u64 {
        self.answered_upto
    }
    /// Final responses logged for requests that were not complete yet.
    pub fn answers_ahead(&self) -> usize {
        self.answers_ahead
    }
    /// Complete requests still waiting for their reply.
    pub fn pending_requests(&self) -> &VecDeque<RequestRecord> {
        &self.requests
    }
    /// Replies still held (not entirely acknowledged).
    pub fn replies(&self) -> &VecDeque<LoggedReply> {
        &self.replies
    }
    /// Reply bytes held.
    pub fn held_bytes(&self) -> usize {
        self.held
    }
    /// True if the logged bytes end in the middle of a response.
    pub fn reply_in_progress(&self) -> bool {
        self.framer.in_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsp(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            body
        )
        .into_bytes()
    }

    #[test]
    fn entry_ending_past_u64_max_is_refused() {
        // Found by the conn_table fuzz target: `start + len` overflowed.
        let mut log = ReplyLog::new(1 << 20);
        log.push_request(RequestRecord {
            start: 0,
            end: 10,
            is_head: false,
        });
        for start in [u64::MAX, u64::MAX - 3] {
            assert_eq!(
                log.log_reply(start, b"HTTP/1.1 200 OK\r\n"),
                Err(ReplyLogError::NotContiguous {
                    expected: 0,
                    got: start
                })
            );
        }
        assert_eq!(log.log_end(), 0);
        assert!(log.log_reply(0, b"HTTP/1.1 204 No Content\r\n\r\n").is_ok());
    }

    #[test]
    fn requests_answered_in_order_and_gc_follows_acks() {
        let mut l = ReplyLog::new(1 << 20);
        assert!(!l.push_request(RequestRecord {
            start: 0,
            end: 10,
            is_head: false
        }));
        assert!(!l.push_request(RequestRecord {
            start: 10,
            end: 25,
            is_head: false
        }));
        let a = rsp("aaaa");
        let b = rsp("bbbbbbbb");
        assert_eq!(l.log_reply(0, &a).unwrap().answered, 1);
        assert_eq!(l.answered_upto(), 10);
        assert_eq!(l.pending_requests().len(), 1);
        let bstart = a.len() as u64;
        assert_eq!(l.log_reply(bstart, &b).unwrap().answered, 1);
        assert_eq!(l.answered_upto(), 25);
        assert!(l.pending_requests().is_empty());
        // Exact re-send is a duplicate; a different one a conflict; a gap an error.
        assert!(l.log_reply(0, &a).unwrap().duplicate);
        assert_eq!(
            l.log_reply(0, &b[..a.len()]),
            Err(ReplyLogError::Conflict(0))
        );
        let end = l.log_end();
        assert_eq!(
            l.log_reply(end + 1, &a),
            Err(ReplyLogError::NotContiguous {
                expected: end,
                got: end + 1
            })
        );
        // Partial ACK of the first reply: nothing collected.
        l.ack(5);
        assert_eq!(l.replies().len(), 2);
        assert_eq!(l.bytes_from(5).unwrap(), [&a[5..], &b[..]].concat());
        // ACK covering the first: collected; its bytes are gone.
        l.ack(bstart + 3);
        assert_eq!(l.replies().len(), 1);
        assert_eq!(l.bytes_from(bstart + 3).unwrap(), b[3..].to_vec());
        assert_eq!(l.bytes_from(2), None);
        l.ack(l.log_end());
        assert_eq!(l.held_bytes(), 0);
        assert_eq!(l.bytes_from(l.log_end()).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn interim_and_pipelined_responses_in_one_entry() {
        let mut l = ReplyLog::new(1 << 20);
        l.push_request(RequestRecord {
            start: 0,
            end: 5,
            is_head: false,
        });
        l.push_request(RequestRecord {
            start: 5,
            end: 9,
            is_head: true,
        });
        let mut e = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        e.extend(rsp("x"));
        e.extend(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"); // HEAD: no body
        assert_eq!(l.log_reply(0, &e).unwrap().answered, 2);
        assert_eq!(l.answered_upto(), 9);
        assert!(!l.reply_in_progress());
    }

    #[test]
    fn reply_before_request_completes() {
        let mut l = ReplyLog::new(1 << 20);
        assert_eq!(l.log_reply(0, &rsp("early")).unwrap().answered, 1);
        assert_eq!(l.answers_ahead(), 1);
        assert!(l.push_request(RequestRecord {
            start: 0,
            end: 40,
            is_head: false
        }));
        assert_eq!(l.answers_ahead(), 0);
        assert_eq!(l.answered_upto(), 40);
        // The next request is HEAD: its response (with a Content-Length but
        // no body) must frame as complete, so requests and responses stay
        // aligned after the early answer.
        assert!(!l.push_request(RequestRecord {
            start: 40,
            end: 60,
            is_head: true
        }));
        let head_rsp = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
        let at = l.log_end();
        assert_eq!(l.log_reply(at, head_rsp).unwrap().answered, 1);
        assert_eq!(l.answered_upto(), 60);
        assert!(!l.reply_in_progress());
    }

    #[test]
    fn bound_and_framing_errors() {
        let mut l = ReplyLog::new(10);
        assert!(matches!(
            l.log_reply(0, &rsp("too long")),
            Err(ReplyLogError::Full { .. })
        ));
        let mut l = ReplyLog::new(1000);
        assert!(matches!(
            l.log_reply(0, b"NOT HTTP\r\n\r\n"),
            Err(ReplyLogError::Framing(_))
        ));
    }
}
