//! A scripted stand-in that speaks MongoDB's wire protocol (OP_MSG) on loopback, for tests that
//! drive a store through the real driver. It has no storage: it records each command and answers
//! with a plausible reply or the one a test scripts, which shows the commands the driver really
//! sends (transaction fields, filters, index specs) and how scripted errors come back.
//!
//! Test support only (feature `test-support`): it panics on malformed input.

use mongodb::bson::{Bson, Document, doc};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const OP_MSG: i32 = 2013;

/// What the stand-in claims to be in its `hello` replies.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    /// A lone `mongod`.
    Standalone,
    /// The primary of a one-member replica set `rs0`.
    ReplicaSet,
    /// A `mongos` router.
    Mongos,
}

/// One command as the server saw it: the body plus any document sequences (`documents`,
/// `updates`) folded into it as arrays.
#[derive(Clone, Debug)]
pub struct Received {
    /// The command name: the first key of the body.
    pub name: String,
    /// The command document.
    pub body: Document,
}

type Script = dyn Fn(&Received) -> Option<Document> + Send + Sync;

/// The running stand-in; it serves until the runtime that started it ends.
pub struct FakeMongod {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
}

impl FakeMongod {
    /// Listens on a free loopback port; `script` answers a command or leaves it to the default.
    pub async fn start(
        kind: Kind,
        script: impl Fn(&Received) -> Option<Document> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, addr, kind, shared.clone(), script.clone()));
            }
        });
        Self { addr, log }
    }

    /// A connection string for the driver.
    pub fn uri(&self) -> String {
        format!("mongodb://{}/?directConnection=true", self.addr)
    }

    /// Every command received, the driver's handshakes included.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Everything but the driver's own handshakes and session housekeeping.
    pub fn commands(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|c| {
                !["isMaster", "ismaster", "hello", "endSessions"].contains(&c.name.as_str())
            })
            .collect()
    }

    /// The recorded commands called `name`.
    pub fn named(&self, name: &str) -> Vec<Received> {
        self.commands()
            .into_iter()
            .filter(|c| c.name == name)
            .collect()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

async fn serve(
    mut socket: TcpStream,
    addr: SocketAddr,
    kind: Kind,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Script>,
) {
    loop {
        let mut header = [0_u8; 16];
        if socket.read_exact(&mut header).await.is_err() {
            return;
        }
        let int = |at: usize| i32::from_le_bytes(header[at..at + 4].try_into().unwrap());
        let (length, request_id, op_code) = (int(0), int(4), int(12));
        let mut rest = vec![0_u8; usize::try_from(length).unwrap() - 16];
        if socket.read_exact(&mut rest).await.is_err() || op_code != OP_MSG {
            return;
        }
        let flags = u32::from_le_bytes(rest[0..4].try_into().unwrap());
        let received = parse_sections(&rest[4..]);
        log.lock().unwrap().push(received.clone());
        if flags & 0b10 != 0 {
            continue; // moreToCome: the client expects no reply
        }
        let reply = script(&received).unwrap_or_else(|| default_reply(&received, addr, kind));
        let mut body = Vec::new();
        reply.to_writer(&mut body).unwrap();
        let total = i32::try_from(16 + 4 + 1 + body.len()).unwrap();
        let mut out = Vec::new();
        for n in [total, request_id + 1_000_000, request_id, OP_MSG] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&0_u32.to_le_bytes());
        out.push(0);
        out.extend_from_slice(&body);
        if socket.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn parse_sections(mut bytes: &[u8]) -> Received {
    let doc_len =
        |b: &[u8]| usize::try_from(i32::from_le_bytes(b[0..4].try_into().unwrap())).unwrap();
    let mut body = Document::new();
    let mut sequences = Vec::new();
    while let Some((&kind, tail)) = bytes.split_first() {
        if kind == 0 {
            let n = doc_len(tail);
            body = Document::from_reader(&tail[..n]).unwrap();
            bytes = &tail[n..];
        } else {
            let size = doc_len(tail);
            let section = &tail[4..size];
            let nul = section.iter().position(|b| *b == 0).unwrap();
            let name = String::from_utf8(section[..nul].to_vec()).unwrap();
            let mut docs = &section[nul + 1..];
            let mut items = Vec::new();
            while !docs.is_empty() {
                let n = doc_len(docs);
                items.push(Bson::Document(Document::from_reader(&docs[..n]).unwrap()));
                docs = &docs[n..];
            }
            sequences.push((name, items));
            bytes = &tail[size..];
        }
    }
    for (name, items) in sequences {
        body.insert(name, items);
    }
    let name = body.keys().next().cloned().unwrap_or_default();
    Received { name, body }
}

fn default_reply(command: &Received, addr: SocketAddr, kind: Kind) -> Document {
    let collection = command.body.get_str(&command.name).unwrap_or_default();
    let namespace = format!(
        "{}.{collection}",
        command.body.get_str("$db").unwrap_or_default()
    );
    match command.name.as_str() {
        "isMaster" | "ismaster" | "hello" => {
            let mut hello = doc! {
                "helloOk": true, "ismaster": true, "isWritablePrimary": true,
                "maxBsonObjectSize": 16_777_216, "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000, "localTime": mongodb::bson::DateTime::now(),
                "logicalSessionTimeoutMinutes": 30, "connectionId": 1,
                "minWireVersion": 0, "maxWireVersion": 21, "readOnly": false, "ok": 1.0,
            };
            if kind == Kind::Mongos {
                hello.insert("msg", "isdbgrid");
            }
            if kind == Kind::ReplicaSet {
                let me = addr.to_string();
                hello.insert("setName", "rs0");
                hello.insert("setVersion", 1);
                hello.insert("hosts", vec![me.clone()]);
                hello.insert("primary", me.clone());
                hello.insert("me", me);
            }
            hello
        }
        "find" | "aggregate" => {
            doc! { "cursor": { "firstBatch": [], "id": 0_i64, "ns": namespace }, "ok": 1.0 }
        }
        "insert" => {
            let n = command.body.get_array("documents").map_or(0, |d| d.len());
            doc! { "n": i32::try_from(n).unwrap(), "ok": 1.0 }
        }
        "update" => doc! { "n": 1, "nModified": 1, "ok": 1.0 },
        "delete" => doc! { "n": 1, "ok": 1.0 },
        "findAndModify" => doc! {
            "lastErrorObject": { "n": 1, "updatedExisting": true },
            "value": Bson::Null, "ok": 1.0,
        },
        _ => doc! { "ok": 1.0 },
    }
}

/// Whether a command ran inside a transaction.
pub fn is_in_transaction(c: &Received) -> bool {
    c.body.get_bool("autocommit") == Ok(false)
}

/// A transactional command's transaction number.
pub fn txn_number(c: &Received) -> i64 {
    c.body.get_i64("txnNumber").unwrap()
}
