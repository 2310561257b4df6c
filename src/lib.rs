pub mod inngest;
