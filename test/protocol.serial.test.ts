// The same suite over the real serialport bindings on both ends of a socat pty pair.
import { protocolSuite } from './helpers/protocolSuite.js';

protocolSuite('pty');
