mod inngest_app;
mod inngest_conformance;
mod inngest_harness;
mod inngest_serve;
