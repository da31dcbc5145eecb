export * from '../../support/images.js';
