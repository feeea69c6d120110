'use strict';

// Example extension. `wordCount.readWorkspaceFile` reads through context.fs, a request the
// supervisor's broker checks: the manifest asks for `fileSystem.read` on `.txt` files of the
// workspace, so once that is granted the broker serves those and refuses everything else.

const { readFile } = require('node:fs/promises');

function count(text) {
  if (typeof text !== 'string') throw new TypeError('wordCount.count(text): text must be a string');
  const words = text.split(/\s+/).filter((word) => word !== '').length;
  // Like `wc -l`, but a last line without a newline still counts.
  const lines = text === '' ? 0 : text.split(/\r\n|\r|\n/).length - (/(\r\n|\r|\n)$/.test(text) ? 1 : 0);
  // Characters are code points, so an emoji counts once.
  const chars = [...text].length;
  return { words, lines, chars };
}

function activate(context) {
  const { registerCommand } = context.commands;
  context.subscriptions.push(
    registerCommand('wordCount.count', (text) => count(text)),
    registerCommand('wordCount.readWorkspaceFile', async (path) => count(await context.fs.readFile(path))),
    // The same with Node's own fs module, no broker involved: the OS sandbox decides. It shows
    // the host at most what the granted permission covers, and only what the OS can express
    // exactly: a glob such as `**/*.txt` is served by the broker alone, file by file.
    registerCommand('wordCount.readFileDirectly', async (path) => count(await readFile(path, 'utf8'))),
  );
}

module.exports = { activate };
