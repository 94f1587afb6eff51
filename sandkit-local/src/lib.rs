//! Sandkit local provider: sessions are directories and processes on this machine
