'use strict'
// A tiny HTTP control endpoint shared by the peer scripts:
//   GET  /stats   -> {"status_requests": n, "status_connections": n, ...}
//   POST /config  -> merges a JSON object into the live configuration (e.g. a new MOTD or sample)
//   POST /reset   -> sets every counter back to 0
const http = require('http')

function startControl (port, stats, config, onConfig) {
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => { body += chunk })
    req.on('end', () => {
      const reply = (code, obj) => {
        res.writeHead(code, { 'content-type': 'application/json' })
        res.end(JSON.stringify(obj))
      }
      if (req.method === 'GET' && req.url === '/stats') return reply(200, stats)
      if (req.method === 'POST' && req.url === '/reset') {
        for (const key of Object.keys(stats)) stats[key] = typeof stats[key] === 'number' ? 0 : ''
        return reply(200, stats)
      }
      if (req.method === 'POST' && req.url === '/config') {
        try {
          Object.assign(config, JSON.parse(body || '{}'))
        } catch (err) {
          return reply(400, { error: String(err) })
        }
        if (onConfig) onConfig(config)
        return reply(200, config)
      }
      return reply(404, { error: 'not found' })
    })
  })
  server.listen(port, '127.0.0.1')
  return server
}

function readConfig (defaults) {
  // Configuration: JSON in the PEER_CONFIG environment variable, or as the first argument.
  const text = process.argv[2] || process.env.PEER_CONFIG || '{}'
  return Object.assign({}, defaults, JSON.parse(text))
}

module.exports = { startControl, readConfig }
