export * from '../../support/aoegw.js';
