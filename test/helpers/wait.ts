export * from '../../support/wait.js';
