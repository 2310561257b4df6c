mod executor_durability;
mod executor_ops;
mod executor_protocol;
mod executor_runs;
mod executor_support;
