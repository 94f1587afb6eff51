//! Sandkit provider for Vercel Sandbox over its REST API
