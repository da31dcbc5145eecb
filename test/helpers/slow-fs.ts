export * from '../../support/slow-fs.js';
