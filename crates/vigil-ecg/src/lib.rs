//! Streaming ECG analysis for Vigil (work in progress).
