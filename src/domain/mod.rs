pub mod skills;
pub mod triage;
