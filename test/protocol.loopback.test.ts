import { protocolSuite } from './helpers/protocolSuite.js';

protocolSuite('loopback');
