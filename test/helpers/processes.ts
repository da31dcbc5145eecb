export * from '../../support/processes.js';
