import t from 'tap'
import { parseKerasModelConfig } from '../../src/model-tools/keras-model-config.js'

t.test('input shapes and layer names, nested models included', async (t) => {
  const config = {
    class_name: 'Functional',
    config: {
      layers: [
        { class_name: 'InputLayer', name: 'input_1', config: { name: 'input_1', batch_input_shape: [null, 224, 224, 3] } },
        {
          class_name: 'Functional',
          name: 'mobilenet_1.00_224',
          config: {
            name: 'mobilenet_1.00_224',
            layers: [
              { class_name: 'InputLayer', config: { name: 'input_2', batch_shape: [null, 192, null, 3] } },
              { class_name: 'ZeroPadding2D', config: { name: 'conv_pad_1' } },
            ],
          },
        },
        { class_name: 'Dense', config: { name: 'dense' } },
      ],
    },
  }
  t.same(parseKerasModelConfig(JSON.stringify(config)), {
    inputShapes: [
      [224, 224, 3],
      [192, Number.NaN, 3],
    ],
    layerNames: ['input_1', 'mobilenet_1.00_224', 'input_2', 'conv_pad_1', 'dense'],
  })
})

t.test('text that is not a model config', async (t) => {
  t.equal(parseKerasModelConfig('not json'), undefined)
  t.equal(parseKerasModelConfig('{"config": {}}'), undefined)
  t.equal(parseKerasModelConfig('null'), undefined)
})
