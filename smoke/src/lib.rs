//! End-to-end smoke scenarios for Sandkit
