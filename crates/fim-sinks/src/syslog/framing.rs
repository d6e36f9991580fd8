//! Turns one encoded syslog message into the bytes written for it: cut to
//! the size limit on a UTF-8 boundary, then framed per RFC 6587 section 3.4.

use fim_transform::text::utf8_prefix_len;

use super::config::{Framing, Transport};

/// Frames messages for one transport.
#[derive(Debug, Clone, Copy)]
pub struct Framer {
    transport: Transport,
    framing: Framing,
    max_message_bytes: usize,
}

/// UDP's largest IPv4 payload: 65535 minus the IP and UDP headers.
const MAX_DATAGRAM: usize = 65_507;

impl Framer {
    pub fn new(transport: Transport, framing: Framing, max_message_bytes: usize) -> Self {
        let max_message_bytes = match transport {
            Transport::Udp => max_message_bytes.min(MAX_DATAGRAM),
            Transport::Tcp | Transport::Tls => max_message_bytes,
        };
        Self {
            transport,
            framing,
            max_message_bytes,
        }
    }

    /// Appends the frame of `message` to `out`. Returns whether the message
    /// was cut to fit `max_message_bytes`.
    pub fn frame(&self, message: &[u8], out: &mut Vec<u8>) -> bool {
        let length = utf8_prefix_len(message, self.max_message_bytes);
        let truncated = length < message.len();
        let message = &message[..length];
        match (self.transport, self.framing) {
            (Transport::Udp, _) => out.extend_from_slice(message),
            (_, Framing::OctetCounting) => {
                out.extend_from_slice(length.to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(message);
            }
            (_, Framing::Newline) => {
                for &byte in message {
                    match byte {
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(byte),
                    }
                }
                out.push(b'\n');
            }
        }
        truncated
    }
}
