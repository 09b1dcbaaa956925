// Preloaded into Playwright's Node driver (NODE_OPTIONS=--require, see sii_bot/browser.py).
// Playwright's client-certificate proxy opens its connections to the server with Nagle's algorithm
// on, so the body of each POST waits for the server's delayed ACK (~40 ms on Linux; a round trip or
// more on real networks). Turn on TCP_NODELAY for every outgoing socket of the driver.
"use strict";
const net = require("net");
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  this.setNoDelay(true);
  return connect.apply(this, args);
};
