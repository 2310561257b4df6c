//! Integration tests: one binary, one module per area.

mod ai_gemini;
mod ai_openai;
mod mail_delivery;
mod support;
