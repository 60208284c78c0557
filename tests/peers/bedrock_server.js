'use strict'
// A real Minecraft Bedrock Edition peer (bedrock-protocol, offline, pure-JS RakNet) for the tests.
// Config (JSON, argv[2] or PEER_CONFIG): port, controlPort, motd, levelName, maxPlayers, version.
// It counts RakNet unconnected pings (what a status check sends), served on the control port
// (GET /stats -> {"status_requests": n}). Prints "READY <port>" once listening.
const bedrock = require('bedrock-protocol')
const { startControl, readConfig } = require('./control')

const config = readConfig({ port: 19132, controlPort: 0, motd: 'mcstatbot bedrock peer', levelName: 'peer world', maxPlayers: 10 })
const stats = { status_requests: 0 }

const options = {
  host: '127.0.0.1',
  port: config.port,
  offline: true,
  raknetBackend: 'jsp-raknet',
  maxPlayers: config.maxPlayers,
  motd: { motd: config.motd, levelName: config.levelName }
}
if (config.version) options.version = config.version
const server = bedrock.createServer(options)

function whenListening (attempt) {
  const socket = server.raknet && server.raknet.raknet && server.raknet.raknet.socket
  if (!socket) {
    if (attempt > 200) { console.error('no RakNet socket'); process.exit(1) }
    return setTimeout(() => whenListening(attempt + 1), 25)
  }
  socket.on('message', (buffer) => {
    if (buffer.length > 0 && buffer[0] === 0x01) stats.status_requests++
  })
  if (config.controlPort) {
    startControl(config.controlPort, stats, config, (cfg) => {
      server.advertisement.motd = cfg.motd
      server.advertisement.levelName = cfg.levelName
      server.raknet.updateAdvertisement()
    })
  }
  console.log(`READY ${config.port}`)
}
whenListening(0)
process.on('SIGTERM', () => { process.exit(0) })
