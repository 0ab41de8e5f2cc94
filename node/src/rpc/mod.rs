//! Ethereum JSON-RPC over HTTP and WebSocket (being built; see issue 5).
