//! One toolkit per database for the stores of the service and of its embedded executor, so
//! that both open, pool, gate and retry the same way:
//!
//! - [`sqlite`]: the opener with its pragmas, the reader pool and the write gate that queues
//!   every writer of a file in this process;
//! - [`mongo`]: client options that fail fast, the check that the deployment runs
//!   transactions, and the transaction helper with the specification's retry rules;
//! - [`private_fs`]: files and folders for their owner only.

#![deny(missing_docs)]

pub mod mongo;
pub mod private_fs;
pub mod sqlite;
