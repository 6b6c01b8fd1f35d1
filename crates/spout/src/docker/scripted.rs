//! A scripted source for the reader's and the watcher's unit tests.
