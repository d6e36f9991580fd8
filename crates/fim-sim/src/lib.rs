//! Qualys FIM API simulator.
